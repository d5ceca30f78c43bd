#include "shim.h"

#include "llama-context.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib> // defines __GLIBC__ under glibc
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>
#ifdef __GLIBC__
#include <malloc.h>
#endif

extern "C" bool goProgress(float progress, void * handle); // exported by progress.go

namespace {

std::mutex  g_log_mu;
int         g_min_level = GGML_LOG_LEVEL_WARN;
int         g_last_level = GGML_LOG_LEVEL_NONE;
std::string g_last_error;

void log_cb(enum ggml_log_level level, const char * text, void *) {
    std::lock_guard<std::mutex> lock(g_log_mu);
    if (level == GGML_LOG_LEVEL_CONT) {
        level = (enum ggml_log_level) g_last_level;
    } else {
        g_last_level = level;
        if (level == GGML_LOG_LEVEL_ERROR) {
            g_last_error.clear();
        }
    }
    if (level == GGML_LOG_LEVEL_ERROR) {
        g_last_error += text;
    }
    if (level >= g_min_level && g_min_level != GGML_LOG_LEVEL_NONE) {
        fputs(text, stderr);
    }
}

void set_err(char * err, size_t n, const char * what) {
    if (err && n > 0) {
        snprintf(err, n, "%s", what);
    }
}

// llama_context's scheduler, a private member. An explicit instantiation may
// name a private member; the friend it defines hands the member out.
template <ggml_backend_sched_ptr llama_context::*M> struct context_sched {
    friend ggml_backend_sched_ptr & sched_of(llama_context & ctx) { return ctx.*M; }
};
ggml_backend_sched_ptr & sched_of(llama_context & ctx);
template struct context_sched<&llama_context::sched>;

} // namespace

extern "C" {

void sdtp_log_init(void) { llama_log_set(log_cb, nullptr); }

void sdtp_log_set_level(int min_level) {
    std::lock_guard<std::mutex> lock(g_log_mu);
    g_min_level = min_level;
}

void sdtp_log_take_error(char * buf, size_t n) {
    std::lock_guard<std::mutex> lock(g_log_mu);
    std::string e = g_last_error;
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
    set_err(buf, n, e.c_str());
    g_last_error.clear();
}

bool sdtp_progress(float progress, void * user_data) { return goProgress(progress, user_data); }

struct llama_model * sdtp_model_load(const char * path, struct llama_model_params params, char * err, size_t n) {
    try {
        return llama_model_load_from_file(path, params);
    } catch (const std::exception & e) {
        set_err(err, n, e.what());
    } catch (...) {
        set_err(err, n, "unknown C++ exception");
    }
    return nullptr;
}

struct llama_context * sdtp_context_new(struct llama_model * model, struct llama_context_params params, char * err, size_t n) {
    try {
        return llama_init_from_model(model, params);
    } catch (const std::exception & e) {
        set_err(err, n, e.what());
    } catch (...) {
        set_err(err, n, "unknown C++ exception");
    }
    return nullptr;
}

// llama_free, without its use after free: ~llama_context destroys its
// backends before its scheduler (members die in reverse order of
// declaration), and the pinned ggml's ggml_backend_sched_free (ollama's
// backend-reset patch) reads each backend's iface.reset, in freed memory.
// That crashes when the allocator has unmapped the memory (seen as a
// SIGSEGV in ggml_backend_sched_free in about one make test in ten, every
// time under MALLOC_PERTURB_ without tcache: bridge/free_test.go). Freeing
// the scheduler first, while the backends live, leaves the destructor a
// null scheduler.
void sdtp_context_free(struct llama_context * ctx) {
    sched_of(*ctx).reset();
    llama_free(ctx);
}

int sdtp_decode(struct llama_context * ctx, const llama_token * tokens, int n, int pos0,
                bool want_last, bool want_all, char * err, size_t n_err) {
    llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i]     = tokens[i];
        batch.pos[i]       = pos0 + i;
        batch.n_seq_id[i]  = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i]    = want_all || (want_last && i == n - 1);
    }
    batch.n_tokens = n;
    int ret;
    try {
        ret = llama_decode(ctx, batch);
    } catch (const std::exception & e) {
        set_err(err, n_err, e.what());
        ret = -100;
    } catch (...) {
        set_err(err, n_err, "unknown C++ exception");
        ret = -100;
    }
    llama_batch_free(batch);
    return ret;
}

llama_token sdtp_sample(struct llama_sampler * smpl, struct llama_context * ctx, int idx, char * err, size_t n) {
    try {
        return llama_sampler_sample(smpl, ctx, idx);
    } catch (const std::exception & e) {
        set_err(err, n, e.what());
    } catch (...) {
        set_err(err, n, "unknown C++ exception");
    }
    return -1;
}

llama_token sdtp_sample_logits(struct llama_sampler * smpl, const float * logits, int n_vocab, char * err, size_t n) {
    try {
        std::vector<llama_token_data> cur(n_vocab);
        for (int i = 0; i < n_vocab; i++) {
            cur[i] = {i, logits[i], 0.0f};
        }
        llama_token_data_array arr = {cur.data(), cur.size(), -1, false};
        llama_sampler_apply(smpl, &arr);
        if (arr.selected < 0 || arr.selected >= (int64_t) arr.size) {
            set_err(err, n, "the sampler selected no token");
            return -1;
        }
        const llama_token tok = arr.data[arr.selected].id;
        llama_sampler_accept(smpl, tok);
        return tok;
    } catch (const std::exception & e) {
        set_err(err, n, e.what());
    } catch (...) {
        set_err(err, n, "unknown C++ exception");
    }
    return -1;
}

namespace {

struct ban_eog {
    std::vector<bool> eog; // by token id
};

void ban_eog_apply(struct llama_sampler * smpl, llama_token_data_array * cur_p) {
    const auto & eog = static_cast<const ban_eog *>(smpl->ctx)->eog;
    auto is_eog = [&](llama_token id) { return id >= 0 && (size_t) id < eog.size() && eog[id]; };
    bool other = false;
    for (size_t i = 0; i < cur_p->size && !other; i++) {
        other = !is_eog(cur_p->data[i].id) && cur_p->data[i].logit != -INFINITY;
    }
    if (!other) {
        return; // only an end of generation is possible: let it end
    }
    for (size_t i = 0; i < cur_p->size; i++) {
        if (is_eog(cur_p->data[i].id)) {
            cur_p->data[i].logit = -INFINITY;
        }
    }
}

const char * ban_eog_name(const struct llama_sampler *) { return "sdtp-ban-eog"; }

struct llama_sampler * ban_eog_clone(const struct llama_sampler * smpl);

void ban_eog_free(struct llama_sampler * smpl) { delete static_cast<ban_eog *>(smpl->ctx); }

const llama_sampler_i ban_eog_iface = {
    /* .name   = */ ban_eog_name,
    /* .accept = */ nullptr,
    /* .apply  = */ ban_eog_apply,
    /* .reset  = */ nullptr,
    /* .clone  = */ ban_eog_clone,
    /* .free   = */ ban_eog_free,
};

struct llama_sampler * ban_eog_clone(const struct llama_sampler * smpl) {
    return llama_sampler_init(&ban_eog_iface, new ban_eog(*static_cast<const ban_eog *>(smpl->ctx)));
}

// guard: fails the sampling with a C++ exception (caught in sdtp_sample*)
// when no token is possible any more, before llama.cpp's dist sampler
// would abort the process on it.
void guard_apply(struct llama_sampler *, llama_token_data_array * cur_p) {
    for (size_t i = 0; i < cur_p->size; i++) {
        if (cur_p->data[i].logit != -INFINITY) {
            return;
        }
    }
    throw std::runtime_error("no token is possible: the grammar and the logit biases rule out every token");
}

const char * guard_name(const struct llama_sampler *) { return "sdtp-guard"; }

const llama_sampler_i guard_iface = {
    /* .name   = */ guard_name,
    /* .accept = */ nullptr,
    /* .apply  = */ guard_apply,
    /* .reset  = */ nullptr,
    /* .clone  = */ nullptr,
    /* .free   = */ nullptr,
};

} // namespace

struct llama_sampler * sdtp_sampler_init_guard(void) { return llama_sampler_init(&guard_iface, nullptr); }

struct llama_sampler * sdtp_sampler_init_ban_eog(const struct llama_vocab * vocab) {
    auto * b = new ban_eog;
    const int n = llama_vocab_n_tokens(vocab);
    b->eog.resize(n);
    for (int i = 0; i < n; i++) {
        b->eog[i] = llama_vocab_is_eog(vocab, i);
    }
    return llama_sampler_init(&ban_eog_iface, b);
}

void sdtp_accept_history(struct llama_sampler * chain, const llama_token * tokens, int n) {
    for (int i = 0; i < llama_sampler_chain_n(chain); i++) {
        struct llama_sampler * s = llama_sampler_chain_get(chain, i);
        if (strcmp(llama_sampler_name(s), "grammar") == 0) {
            continue;
        }
        for (int j = 0; j < n; j++) {
            llama_sampler_accept(s, tokens[j]);
        }
    }
}

struct sdtp_abort {
    std::atomic<bool> raised{false};
};

sdtp_abort * sdtp_abort_new(void) { return new sdtp_abort; }
void sdtp_abort_free(sdtp_abort * a) { delete a; }
void sdtp_abort_set(sdtp_abort * a, bool raised) { a->raised.store(raised, std::memory_order_relaxed); }
bool sdtp_abort_poll(void * a) { return static_cast<sdtp_abort *>(a)->raised.load(std::memory_order_relaxed); }

void sdtp_release_free_memory(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

int64_t sdtp_malloc_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
    const struct mallinfo2 mi = mallinfo2();
    return int64_t(mi.uordblks + mi.hblkhd);
#else
    return -1;
#endif
}

int32_t sdtp_chat_apply_template(const char * tmpl, const struct llama_chat_message * chat, size_t n_msg,
                                 bool add_ass, char * buf, int32_t length, char * err, size_t n_err) {
    try {
        return llama_chat_apply_template(tmpl, chat, n_msg, add_ass, buf, length);
    } catch (const std::exception & e) {
        set_err(err, n_err, e.what());
    } catch (...) {
        set_err(err, n_err, "unknown C++ exception");
    }
    return -100;
}

bool sdtp_state_save(struct llama_context * ctx, const char * path, const llama_token * tokens, size_t n, char * err, size_t n_err) {
    try {
        return llama_state_save_file(ctx, path, tokens, n);
    } catch (const std::exception & e) {
        set_err(err, n_err, e.what());
    }
    return false;
}

bool sdtp_state_load(struct llama_context * ctx, const char * path, llama_token * tokens, size_t cap, size_t * n_out, char * err, size_t n_err) {
    try {
        return llama_state_load_file(ctx, path, tokens, cap, n_out);
    } catch (const std::exception & e) {
        set_err(err, n_err, e.what());
    }
    return false;
}

} // extern "C"
