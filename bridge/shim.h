// Exception-safe C entry points over llama.cpp. llama.cpp is C++ and some of
// its paths throw (grammar, decode, state I/O); an exception unwinding into Go
// kills the process, so every call that may throw goes through here.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Logging: llama.cpp and ggml log through this; messages at or above
// min_level go to stderr, and the last ERROR line is kept for Go errors.
void        sdtp_log_init(void);
void        sdtp_log_set_level(int min_level);
// Copies the last error line logged on any thread into buf and clears it.
void        sdtp_log_take_error(char * buf, size_t n);

// Progress callback trampoline for model loading: user_data is a cgo.Handle.
bool        sdtp_progress(float progress, void * user_data);

struct llama_model *   sdtp_model_load(const char * path, struct llama_model_params params, char * err, size_t n);
struct llama_context * sdtp_context_new(struct llama_model * model, struct llama_context_params params, char * err, size_t n);
// llama_free without the pinned llama.cpp's use after free (shim.cpp).
void                   sdtp_context_free(struct llama_context * ctx);

// Decodes n tokens at positions pos0.. into sequence 0. Logits are computed
// for the last token only when want_last is set, for every token when
// want_all is set. Returns llama_decode's code, or -100 on an exception.
int         sdtp_decode(struct llama_context * ctx, const llama_token * tokens, int n, int pos0,
                        bool want_last, bool want_all, char * err, size_t n_err);

// Samples the token at output row idx and accepts it. Returns -1 (and fills
// err) when the sampler threw, e.g. a grammar with no valid continuation.
llama_token sdtp_sample(struct llama_sampler * smpl, struct llama_context * ctx, int idx, char * err, size_t n);
// Samples from logits computed outside llama_decode (the staged engine) and
// accepts the token. Returns -1 (and fills err) on failure.
llama_token sdtp_sample_logits(struct llama_sampler * smpl, const float * logits, int n_vocab, char * err, size_t n);

// A sampler that sets the logits of end-of-generation tokens to -inf
// (ignore EOS) while any other token is still possible. When nothing else
// is (a grammar that has matched completely admits only EOG tokens), it
// leaves them, so the generation ends instead of failing.
struct llama_sampler * sdtp_sampler_init_ban_eog(const struct llama_vocab * vocab);

// A sampler that throws (so sdtp_sample* return an error) when every logit
// is -inf, where llama.cpp's dist sampler would abort the process.
struct llama_sampler * sdtp_sampler_init_guard(void);

// Feeds prompt tokens to the chain's history (penalties) but not to a
// grammar, which constrains only what is generated.
void        sdtp_accept_history(struct llama_sampler * chain, const llama_token * tokens, int n);

// Cancellation. ggml's CPU backend calls an abort callback between graph
// operations; sdtp_abort_poll is that callback, reading a flag that Go
// raises from another goroutine when a context.Context is done.
typedef struct sdtp_abort sdtp_abort;
sdtp_abort * sdtp_abort_new(void);
void         sdtp_abort_free(sdtp_abort * a);
void         sdtp_abort_set(sdtp_abort * a, bool raised);
bool         sdtp_abort_poll(void * a);

// Returns memory freed by llama.cpp to the operating system where the C
// library keeps it otherwise (glibc's malloc_trim); a no-op elsewhere.
void        sdtp_release_free_memory(void);
int64_t     sdtp_malloc_in_use(void);

// llama_chat_apply_template with exceptions caught: returns its result
// (the formatted length, or a negative value for a template it cannot
// apply), or -100 with err filled when it threw.
int32_t     sdtp_chat_apply_template(const char * tmpl, const struct llama_chat_message * chat, size_t n_msg,
                                     bool add_ass, char * buf, int32_t length, char * err, size_t n_err);

bool        sdtp_state_save(struct llama_context * ctx, const char * path, const llama_token * tokens, size_t n, char * err, size_t n_err);
bool        sdtp_state_load(struct llama_context * ctx, const char * path, llama_token * tokens, size_t cap, size_t * n_out, char * err, size_t n_err);

#ifdef __cplusplus
}
#endif
