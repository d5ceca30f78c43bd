// Shared graph helpers for the per-architecture block builders (arch_*.cpp):
// norm, RoPE, attention over the per-layer cache, and gated FFNs. They
// mirror llama.cpp's own graph (llama-graph.cpp) op for op, so a stage that
// prunes nothing reproduces llama_decode.
#pragma once

#include <utility>
#include <string>
#include <vector>

#include "ggml.h"
#include "ggml-backend.h"
#include "llama-model.h"
#include "llama-cparams.h"
#include "stage.h"

struct sdtp_engine;

struct stage_graph {
    ggml_context          * ctx;
    const llama_model     & model;
    const llama_hparams   & hp;
    const llama_cparams   & cp;
    sdtp_engine           * eng;
    int                     n;      // tokens in this run
    ggml_tensor           * pos;    // I32 [n], original positions
    ggml_cgraph           * gf;

    // Differentiable mode (saliency, sdtp_grad): every op has a ggml
    // backward pass, attention runs over this run's own K/V (no cache), and
    // the masks are [n, n] F32 causal masks, one with the sliding window.
    bool          grad_mode  = false;
    ggml_tensor * mask_full  = nullptr;
    ggml_tensor * mask_swa   = nullptr;

    int           last_only    = -1;      // layer after whose attention only the last row is needed
    int           scorer_layer = -1;      // layer whose last-window attention the scorer reads
    int           scorer_win   = 0;       // its window (queries)
    ggml_tensor * scorer_attn  = nullptr; // [1, n_kv] mean attention there
    // Per-head window attention of each layer run (sdtp_engine_run's
    // layer_attn_out): (layer, [1, n_kv, n_head]).
    int           layer_attn_win = 0;
    int           layer_attn_sampled = 0;     // more queries before the window,
    int           layer_attn_stride = 1;      // every stride-th
    sdtp_swa_attn layer_attn_swa = SDTP_SWA_FULL_MASK;
    const bool  * layer_attn_on  = nullptr; // per layer from first_layer; NULL: all
    int           first_layer    = 0;
    std::vector<std::pair<int, ggml_tensor *>> layer_attn;
    // Per-cell attention statistics of each layer run, for KV policies
    // (sdtp_engine_track_attention): (layer, [1, n_kv]).
    std::vector<std::pair<int, ggml_tensor *>> stats;

    ggml_tensor * rms_norm(ggml_tensor * x, ggml_tensor * w) const;
    // Q, K, V projections of x for layer il as [head_dim, heads, n], with
    // the layer's biases when it has them.
    void qkv(int il, ggml_tensor * x, ggml_tensor ** q, ggml_tensor ** k, ggml_tensor ** v) const;
    ggml_tensor * rope(ggml_tensor * x, int il) const;
    // Stores K/V in layer il's cache and attends over it; q/k/v are
    // [head_dim, heads, n]. Returns [head_dim*n_head, n] after wo (and bo).
    ggml_tensor * attention(int il, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, float kq_scale);
    ggml_tensor * tanh(ggml_tensor * x) const;
    ggml_tensor * ffn_swiglu(int il, ggml_tensor * x) const;
    ggml_tensor * ffn_geglu(int il, ggml_tensor * x) const;
    // The last row of t in layer last_only (when only the logits of the
    // last token are wanted, as llama.cpp does with its output ids), else t.
    ggml_tensor * out_rows(int il, ggml_tensor * t) const;
    // x·w (+ b when b is set).
    ggml_tensor * linear(ggml_tensor * w, ggml_tensor * b, ggml_tensor * x) const;
};

// One architecture: how tokens become the residual stream, one block, and
// the final projection to logits.
struct stage_arch {
    const char * name;
    ggml_tensor * (*embed)(stage_graph & g, ggml_tensor * tokens);
    ggml_tensor * (*block)(stage_graph & g, int il, ggml_tensor * x);
    ggml_tensor * (*head)(stage_graph & g, ggml_tensor * x);
};

// Implemented in arch_*.cpp.
extern const stage_arch sdtp_arch_llama;
extern const stage_arch sdtp_arch_qwen2;
extern const stage_arch sdtp_arch_qwen3;
extern const stage_arch sdtp_arch_gemma3;

// Writes msg into a C caller's error buffer (err may be NULL).
void sdtp_set_err(char * err, size_t n, const std::string & msg);

// A CPU backend, a scheduler over it and the metadata arena for graphs of
// up to graph_size nodes: what the engine and the gradient pass compute
// with.
struct cpu_compute {
    ggml_backend_t       cpu   = nullptr;
    ggml_backend_sched_t sched = nullptr;
    size_t               graph_size = 0;
    std::vector<uint8_t> meta;

    cpu_compute() = default;
    cpu_compute(const cpu_compute &) = delete;
    ~cpu_compute();
    // Throws std::runtime_error when the CPU backend cannot start. grads
    // sizes the arena for graphs with gradients.
    void init(int n_threads, size_t max_nodes, bool grads);
};

// Whether a query at position p1 may attend to a cached key at p0: causal,
// and inside the sliding window when swa is set.
inline bool sdtp_can_attend(const llama_hparams & hp, llama_pos p0, llama_pos p1, bool swa) {
    return p0 <= p1 && !(swa && llama_hparams::is_masked_swa(hp.n_swa, hp.swa_type, p0, p1));
}

// The staged implementation of m's architecture, or nullptr.
const stage_arch * sdtp_arch_for(const llama_model & m);

// Defaults shared by most architectures.
ggml_tensor * sdtp_embed_tokens(stage_graph & g, ggml_tensor * tokens);
ggml_tensor * sdtp_output_head(stage_graph & g, ggml_tensor * x);
