// The staged engine: runs a contiguous range of a llama.cpp model's layers
// as a ggml graph over the live tokens, with a KV cache per layer that holds
// only the tokens alive at that layer. C API for cgo.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sdtp_engine sdtp_engine;

// Name of the staged architecture for this model, or NULL when the model
// can only run through llama_decode.
const char * sdtp_engine_arch(const struct llama_model * model);

// Creates an engine over the model of lctx, with lctx's RoPE/YaRN settings.
// n_ctx bounds the cells of every layer's cache.
sdtp_engine * sdtp_engine_new(struct llama_context * lctx, int n_ctx, int n_threads, char * err, size_t n_err);
void          sdtp_engine_free(sdtp_engine * e);
void          sdtp_engine_set_threads(sdtp_engine * e, int n_threads);
// Sets the callback the CPU backend polls between graph operations; when it
// returns true the running graph stops and sdtp_engine_run returns 1.
void          sdtp_engine_set_abort_callback(sdtp_engine * e, ggml_abort_callback cb, void * data);

// Empties every cache and sets the segments: layers [starts[i], starts[i+1])
// share one set of cached tokens (a pruning stage). starts[0] must be 0.
bool          sdtp_engine_reset(sdtp_engine * e, const int * starts, int n_starts, char * err, size_t n_err);

// Loads predictor heads scored in-graph, one MLP per pruning layer:
// w1 [h][n_embd + k], b1 [h], w2 [2][h], b2 [2] per head, concatenated in
// the order of layers. The heads' input is the residual stream followed by
// k per-token context values that each run supplies (head_ctx). Replaces
// any heads loaded before.
bool sdtp_engine_set_heads(sdtp_engine * e, int n_heads, const int * layers, int h, int k,
                           const float * w1, const float * b1, const float * w2, const float * b2,
                           char * err, size_t n_err);

// Head timing: when on, runs time the in-graph heads where they run (the
// scheduler pauses after the head's input and after its scores; the cost
// of one such pause, timed on a one-element op after the scores, is
// subtracted) and add the microseconds to a counter that
// sdtp_engine_head_us reads and clears.
void    sdtp_engine_time_heads(sdtp_engine * e, bool on);
int64_t sdtp_engine_head_us(sdtp_engine * e);

// How per-head layer attention (layer_attn_out of sdtp_engine_run) masks
// sliding-window layers: with the full causal mask (every earlier token is
// scored, though the layer's real attention cannot reach beyond its
// window) or with the layer's own mask (tokens outside the window get 0).
typedef enum {
    SDTP_SWA_FULL_MASK,
    SDTP_SWA_OWN_MASK,
} sdtp_swa_attn;

// Runs layers [first, last) on n tokens at original positions pos, appending
// their K/V to those layers' caches. Input: token ids when first == 0, else
// hidden states [n][n_embd]. Outputs, each optional (NULL):
//   hidden_out  [n][n_embd]  the residual stream after layer last-1;
//   logits_out  [n_vocab]    logits of the last token (requires last == n_layer),
//               [n][n_vocab] of every token when all_logits is set;
//   attn_out    [cells]      mean attention the last n_win tokens pay to each
//                            cached token of layer last-1 (cells after this run);
//   head_out    [n]          keep − drop of the predictor head for layer last,
//               which reads head_ctx [n][k] (k of sdtp_engine_set_heads; NULL when 0);
//   layer_attn_out, for each layer il of [first, last) in order whose
//               layer_attn_on[il - first] is set (all when layer_attn_on is
//               NULL): [n_head(il)][cells of il after this run], the
//               attention the last layer_attn_win tokens, and
//               layer_attn_sampled more before them (every
//               layer_attn_stride-th, from the token just before the
//               window back, each counted layer_attn_stride times), pay
//               to each cached token, summed over those queries, per head.
//               It is computed in-graph as (layer_attn_win +
//               layer_attn_sampled) × cells scores per head, beside flash
//               attention.
// Returns 0; 1 when the abort callback stopped the graph (nothing is
// appended to the caches); or -1 with err set.
int sdtp_engine_run(sdtp_engine * e, int first, int last,
                    const int32_t * tokens, const float * hidden_in, const int32_t * pos, int n,
                    float * hidden_out, float * logits_out, bool all_logits, float * attn_out, int n_win,
                    float * head_out, const float * head_ctx,
                    float * layer_attn_out, int layer_attn_win, int layer_attn_sampled, int layer_attn_stride,
                    sdtp_swa_attn layer_attn_swa, const bool * layer_attn_on, char * err, size_t n_err);

// Layer il's shape for FLOPs accounting: {n_head, n_head_kv, head_dim,
// n_ff, sliding window (0 = full attention)}.
void    sdtp_engine_layer_shape(const sdtp_engine * e, int il, int * out5);

int     sdtp_engine_cells(const sdtp_engine * e, int layer);
int64_t sdtp_engine_kv_bytes(const sdtp_engine * e);

// ---- KV-cache compression (docs/KV.md) ------------------------------------

// Attention statistics per cached cell, for KV eviction policies: each run
// computes, for every layer it runs, the attention its last n_win queries
// (n_win <= 0: all of them) pay each cell of that layer, summed over heads
// and queries, from the queries and cached keys beside flash attention.
typedef enum {
    SDTP_ATTN_STATS_OFF,        // no statistics (and no cost)
    SDTP_ATTN_STATS_ACCUMULATE, // add each run's to the cells' totals (H2O)
    SDTP_ATTN_STATS_REPLACE,    // keep only the latest run's (SnapKV's observation window)
} sdtp_attn_stats;
void sdtp_engine_track_attention(sdtp_engine * e, sdtp_attn_stats mode, int n_win);

// Layer's cells in cache order: original positions and attention statistics
// (0 where none were computed); each output optional, sdtp_engine_cells long.
void sdtp_engine_cell_info(const sdtp_engine * e, int layer, int32_t * pos_out, float * scores_out);

// Evicts every cell of layer but keep[0..n_keep) (increasing cell indices):
// the survivors' K/V rows move down, so the layer's cells and KV bytes
// shrink; positions are unchanged. Returns false with err set on bad input.
bool sdtp_engine_evict(sdtp_engine * e, int layer, const int * keep, int n_keep, char * err, size_t n_err);

// ---- prefix reuse and context shift (docs/ENGINE.md) -----------------------

// Drops, in every layer, the cells at positions [p0, p1) (p1 < 0: no upper
// bound), compacting the layers' caches like sdtp_engine_evict; llama.cpp's
// llama_memory_seq_rm for the per-layer caches. Returns the cells dropped.
int sdtp_engine_remove(sdtp_engine * e, int p0, int p1);

// Moves, in every layer, the cells at positions >= p0 by delta (negative:
// towards 0) and re-rotates their cached keys by delta with the layer's
// RoPE, as llama.cpp's K-shift does (llama_memory_seq_add). Positions must
// stay >= 0 and increasing: the caller removes [p0 + delta, p0) first.
// Returns false with err set otherwise or when the graph fails.
bool sdtp_engine_shift(sdtp_engine * e, int p0, int delta, char * err, size_t n_err);

// ---- saving and restoring the caches (prompt cache files) -----------------

// Bytes of one cached row of layer il's keys (v = false) or values (v = true).
int64_t sdtp_engine_row_bytes(const sdtp_engine * e, int il, bool v);
// Copies layer il's cells: positions, then their K and V rows (each
// output optional; sdtp_engine_cells rows).
void sdtp_engine_layer_get(const sdtp_engine * e, int il, int32_t * pos, void * k, void * v);
// Replaces layer il's cells by n cells at positions pos (increasing) with
// the given K and V rows (n rows each); their attention statistics start
// at 0. Returns false with err set on bad input.
bool sdtp_engine_layer_set(sdtp_engine * e, int il, const int32_t * pos, int n, const void * k, const void * v,
                           char * err, size_t n_err);

// ---- gradient pass (saliency) -------------------------------------------

typedef struct sdtp_grad sdtp_grad;

// A differentiable forward of the whole model of lctx over one sequence,
// for gradient × input saliency: the same weights and block builders as
// the engine, with ops that have a ggml backward pass (see stage_graph.h).
sdtp_grad * sdtp_grad_new(struct llama_context * lctx, int n_threads, char * err, size_t n_err);
void        sdtp_grad_free(sdtp_grad * g);

// Runs tokens[0..n) (positions 0..n-1, n >= 2) and returns in loss_out the
// mean next-token cross-entropy of the predictions made at positions
// loss_from..n-2 (0: the whole sequence). For each of the
// n_layers layers (increasing), hidden_out receives the residual stream
// entering it and grad_out (optional: NULL runs forward only) the gradient
// of the loss with respect to it, each [n_layers][n][n_embd]. delta
// (optional, same shape) is added to those residual streams first, for
// finite-difference checks. Returns 0, or -1 with err set.
int sdtp_grad_run(sdtp_grad * g, const int32_t * tokens, int n, int loss_from, const int * layers, int n_layers,
                  const float * delta, double * loss_out, float * hidden_out, float * grad_out,
                  char * err, size_t n_err);

#ifdef __cplusplus
}
#endif
