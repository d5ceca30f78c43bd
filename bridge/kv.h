// KV-cache compression helpers of the staged engine: per-cell attention
// statistics as a side output, and compaction of a layer's cache after
// eviction (see docs/KV.md).
#pragma once

#include <cstdint>
#include <vector>

#include "ggml.h"

// sdtp_window_attention sums softmax(q·K) over the heads and the last n_win
// queries, per cached cell: [1, n_kv]. q is [head_dim, n_head, n], K a view
// of the cache [head_dim, n_head_kv, n_kv], mask F32 [n_kv, n] (rows of the
// queries). It materialises n_win × n_kv scores per head, which flash
// attention never does, so it runs only where statistics are asked for.
ggml_tensor * sdtp_window_attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * K, ggml_tensor * mask,
                                    int n_win, float kq_scale, float softcap);

// sdtp_window_attention_heads is sdtp_window_attention summed over the
// queries only, one row per head: [1, n_kv, n_head], i.e. [n_head][n_kv]
// in memory. With n_sampled > 0 the queries are the last n_win and
// n_sampled more before them, every stride-th from the one just before
// the window back (n_win + (n_sampled − 1) · stride < n), each counted
// stride times: a few queries estimate the sum over a long stretch of
// text.
ggml_tensor * sdtp_window_attention_heads(ggml_context * ctx, ggml_tensor * q, ggml_tensor * K, ggml_tensor * mask,
                                          int n_win, int n_sampled, int stride, float kq_scale, float softcap);

// sdtp_kv_compact keeps the cells keep[0..n_keep) (increasing indices) of
// one layer: their K/V rows move down to rows 0..n_keep-1 of k and v (host
// memory), and cells and scores shrink to match. Cached keys are post-RoPE
// at their original positions, so moving rows needs no re-rotation.
void sdtp_kv_compact(ggml_tensor * k, ggml_tensor * v, std::vector<int32_t> & cells, std::vector<float> & scores,
                     const int * keep, int n_keep);
