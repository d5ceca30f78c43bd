// The staged engine (see stage.h). One graph runs a range of layers over the
// live tokens; each layer's KV cache holds only the tokens alive at that
// layer, in the order they were appended, with their original positions.
#include "stage.h"
#include "stage_graph.h"
#include "kv.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama-context.h"

namespace {

// A segment is a run of layers that a prefill runs together: one pruning
// stage. Its layers cache the same tokens until a KV policy evicts per layer.
struct segment {
    int first, last;
};

// A predictor head: Linear(d [+ k], h) → GELU → Linear(h, 2), in ggml
// layout. The first layer's columns for the k context values are kept
// apart (w1c) so that the stream's matmul keeps its width d.
struct head {
    ggml_tensor * w1, * w1c, * b1, * w2, * b2;
};

struct mask_input {
    ggml_tensor * f32;  // filled from the host
    ggml_tensor * f16;  // what flash attention reads
    int layer;          // a layer with these cells; layers with equal cells share the mask
    bool swa;
};

} // namespace

void sdtp_set_err(char * err, size_t n, const std::string & msg) {
    if (err && n > 0) snprintf(err, n, "%s", msg.c_str());
}

void cpu_compute::init(int n_threads, size_t max_nodes, bool grads) {
    cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (!cpu) throw std::runtime_error("no CPU backend");
    ggml_backend_cpu_set_n_threads(cpu, n_threads);
    graph_size = max_nodes;
    meta.resize(ggml_tensor_overhead() * graph_size + ggml_graph_overhead_custom(graph_size, grads));
    ggml_backend_t backends[] = {cpu};
    sched = ggml_backend_sched_new(backends, nullptr, 1, graph_size, false, false);
}

cpu_compute::~cpu_compute() {
    if (sched) ggml_backend_sched_free(sched);
    if (cpu) ggml_backend_free(cpu);
}

// The staged architectures; llama/staged.go's ErrUnsupportedArch message
// and docs/ENGINE.md name them.
const stage_arch * sdtp_arch_for(const llama_model & m) {
    for (const auto & L : m.layers) {
        if (L.ffn_gate_inp != nullptr || L.wqkv != nullptr) {
            return nullptr; // MoE or fused QKV: not mirrored here
        }
    }
    if (m.hparams.use_kq_norm || m.hparams.n_embd_head_k != m.hparams.n_embd_head_v) {
        return nullptr;
    }
    switch (m.arch) {
        case LLM_ARCH_LLAMA:  return &sdtp_arch_llama;
        case LLM_ARCH_QWEN2:  return &sdtp_arch_qwen2;
        case LLM_ARCH_QWEN3:  return &sdtp_arch_qwen3;
        case LLM_ARCH_GEMMA3: return &sdtp_arch_gemma3;
        default:              return nullptr;
    }
}

struct sdtp_engine {
    const llama_model   & model;
    const llama_hparams & hp;
    llama_cparams         cp;
    const stage_arch    * arch;
    int                   n_ctx;

    cpu_compute           cc;
    ggml_context        * kv_ctx = nullptr;
    ggml_backend_buffer_t kv_buf = nullptr;
    std::vector<ggml_tensor *> k, v;     // per layer: [n_embd_{k,v}_gqa, n_ctx] F16
    std::vector<segment> segs;
    std::vector<int>     seg_of;         // layer -> segment
    // Per layer: cells[il][c] is the original position of the token in
    // cache row c; attn_scores[il][c] its attention statistic (empty while
    // none are tracked).
    std::vector<std::vector<int32_t>> cells;
    std::vector<std::vector<float>>   attn_scores;
    sdtp_attn_stats stats_mode = SDTP_ATTN_STATS_OFF;
    int             stats_win  = 0;
    ggml_context        * heads_ctx = nullptr;
    ggml_backend_buffer_t heads_buf = nullptr;
    std::map<int, head>   heads;         // pruning layer -> head
    int                   head_ctx = 0;  // context values per token after the stream

    int n_threads = 1;

    // Head timing (sdtp_engine_time_heads).
    bool          time_heads = false;
    // Timing pauses the graph twice per head; without a pool of its own
    // the CPU backend starts fresh threads at every resume, and that
    // start-up jitter made the same heads time 10–72 ms.
    ggml_threadpool * timing_pool = nullptr;
    ggml_tensor * timed_from  = nullptr; // the heads' input
    ggml_tensor * timed_to    = nullptr; // their scores
    ggml_tensor * timed_pause = nullptr; // a one-element op after them
    int64_t       t_from      = 0;
    int64_t       t_to        = 0;
    int64_t       head_us     = 0;

    // Per-run state, reset by run().
    std::vector<mask_input> masks;
    const int32_t * run_pos = nullptr;
    int             run_n   = 0;

    sdtp_engine(const llama_model & m, const llama_cparams & c, const stage_arch * a, int n)
        : model(m), hp(m.hparams), cp(c), arch(a), n_ctx(n) {}

    ~sdtp_engine() {
        use_timing_pool(false);
        free_heads();
        if (kv_buf) ggml_backend_buffer_free(kv_buf);
        if (kv_ctx) ggml_free(kv_ctx);
    }

    void use_timing_pool(bool on) {
        ggml_backend_cpu_set_threadpool(cc.cpu, nullptr);
        if (timing_pool) ggml_threadpool_free(timing_pool);
        timing_pool = nullptr;
        if (on) {
            ggml_threadpool_params p = ggml_threadpool_params_default(n_threads);
            timing_pool = ggml_threadpool_new(&p);
            ggml_backend_cpu_set_threadpool(cc.cpu, timing_pool);
        }
    }

    void free_heads() {
        if (heads_buf) ggml_backend_buffer_free(heads_buf);
        if (heads_ctx) ggml_free(heads_ctx);
        heads_buf = nullptr;
        heads_ctx = nullptr;
        heads.clear();
        head_ctx = 0;
    }

    // mask returns the attention mask of layer il for this run: row i
    // lets query i (position pos[i]) see cached cells at positions <=
    // pos[i], and with swa only those within the sliding window.
    mask_input & mask(ggml_context * ctx, int il, bool swa, int n_kv, int n) {
        for (auto & m : masks) {
            if (m.swa == swa && cells[m.layer] == cells[il]) return m;
        }
        mask_input m;
        m.f32 = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_kv, n);
        ggml_set_input(m.f32);
        m.f16 = ggml_cast(ctx, m.f32, GGML_TYPE_F16);
        m.layer = il;
        m.swa = swa;
        masks.push_back(m);
        return masks.back();
    }

    void fill_mask(const mask_input & m) {
        const auto & cells = this->cells[m.layer];
        const int64_t n_kv = m.f32->ne[0];
        std::vector<float> data(n_kv * run_n, -INFINITY);
        for (int i = 0; i < run_n; i++) {
            const llama_pos p1 = run_pos[i];
            for (int64_t c = 0; c < n_kv; c++) {
                const llama_pos p0 = c < (int64_t) cells.size() ? cells[c] : run_pos[c - cells.size()];
                if (sdtp_can_attend(hp, p0, p1, m.swa)) data[i * n_kv + c] = 0.0f;
            }
        }
        ggml_backend_tensor_set(m.f32, data.data(), 0, data.size() * sizeof(float));
    }
};

// ---- shared graph helpers ----------------------------------------------

// sigmoid_d is the logistic function from ops that have a backward pass:
// exp(−softplus(−z)), finite for any z.
static ggml_tensor * sigmoid_d(ggml_context * ctx, ggml_tensor * z) {
    return ggml_exp(ctx, ggml_neg(ctx, ggml_softplus(ctx, ggml_neg(ctx, z))));
}

ggml_tensor * stage_graph::rms_norm(ggml_tensor * x, ggml_tensor * w) const {
    if (!grad_mode) {
        return ggml_mul(ctx, ggml_rms_norm(ctx, x, hp.f_norm_rms_eps), w);
    }
    // ggml_rms_norm's backward gives wrong gradients; this composition's
    // matches finite differences (bridge/saliency_test.go).
    ggml_tensor * rms = ggml_sqrt(ctx, ggml_scale_bias(ctx, ggml_mean(ctx, ggml_sqr(ctx, x)), 1.0f, hp.f_norm_rms_eps));
    return ggml_mul(ctx, ggml_div(ctx, x, ggml_repeat(ctx, rms, x)), w);
}

ggml_tensor * stage_graph::tanh(ggml_tensor * x) const {
    if (!grad_mode) return ggml_tanh(ctx, x);
    return ggml_scale_bias(ctx, sigmoid_d(ctx, ggml_scale(ctx, x, 2.0f)), 2.0f, -1.0f); // 2σ(2x) − 1
}

void stage_graph::qkv(int il, ggml_tensor * x, ggml_tensor ** q, ggml_tensor ** k, ggml_tensor ** v) const {
    const auto & L = model.layers[il];
    const int64_t hd = hp.n_embd_head_k;
    *q = ggml_reshape_3d(ctx, linear(L.wq, L.bq, x), hd, hp.n_head(il), n);
    *k = ggml_reshape_3d(ctx, linear(L.wk, L.bk, x), hd, hp.n_head_kv(il), n);
    *v = ggml_reshape_3d(ctx, linear(L.wv, L.bv, x), hd, hp.n_head_kv(il), n);
}

ggml_tensor * stage_graph::linear(ggml_tensor * w, ggml_tensor * b, ggml_tensor * x) const {
    if (grad_mode && w->type != GGML_TYPE_F32) {
        // The input gradient is ggml's out_prod, which lacks F16 and, for
        // quantized weights, dequantizes every weight row once per token:
        // one F32 copy per graph costs its memory and saves that.
        w = ggml_cast(ctx, w, GGML_TYPE_F32);
    }
    ggml_tensor * y = ggml_mul_mat(ctx, w, x);
    return b ? ggml_add(ctx, y, b) : y;
}

ggml_tensor * stage_graph::out_rows(int il, ggml_tensor * t) const {
    if (il != last_only || n == 1) return t;
    return ggml_view_2d(ctx, t, t->ne[0], 1, t->nb[1], (n - 1) * t->nb[1]);
}

ggml_tensor * stage_graph::rope(ggml_tensor * x, int il) const {
    return ggml_rope_ext(ctx, x, pos, model.get_rope_factors(cp, il), hp.n_rot, hp.rope_type, cp.n_ctx_orig_yarn,
                         model.get_rope_freq_base(cp, il), model.get_rope_freq_scale(cp, il),
                         cp.yarn_ext_factor, cp.yarn_attn_factor, cp.yarn_beta_fast, cp.yarn_beta_slow);
}

// attention_grad is softmax attention over the run's own keys with ops
// that all have a backward pass (flash attention has none). q/k/v are
// [head_dim, heads, n]; returns [head_dim*n_head, n].
static ggml_tensor * attention_grad(ggml_context * ctx, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v,
                                    ggml_tensor * mask, float kq_scale) {
    // A reshape's backward makes its gradient contiguous; the permutes'
    // would not, and ops before this (gemma3's ggml_scale) need it to be.
    q = ggml_reshape(ctx, q, q);
    k = ggml_reshape(ctx, k, k);
    v = ggml_reshape(ctx, v, v);
    ggml_tensor * Q = ggml_cont(ctx, ggml_permute(ctx, q, 0, 2, 1, 3));   // [hd, n, H]
    ggml_tensor * K = ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3));   // [hd, n, Hkv]
    ggml_tensor * Vt = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [n, hd, Hkv]
    ggml_tensor * p = ggml_soft_max_ext(ctx, ggml_mul_mat(ctx, K, Q), mask, kq_scale, 0.0f); // [n, n, H]
    ggml_tensor * o = ggml_cont(ctx, ggml_permute(ctx, ggml_mul_mat(ctx, Vt, p), 0, 2, 1, 3)); // [hd, H, n]
    return ggml_reshape_2d(ctx, o, o->ne[0] * o->ne[1], o->ne[2]);
}

ggml_tensor * stage_graph::attention(int il, ggml_tensor * q, ggml_tensor * k, ggml_tensor * v, float kq_scale) {
    const auto & L = model.layers[il];
    if (grad_mode) {
        if (hp.attn_soft_cap) throw std::runtime_error("attention logit soft-capping has no gradient here");
        return linear(L.wo, L.bo, attention_grad(ctx, q, k, v, hp.is_swa(il) ? mask_swa : mask_full, kq_scale));
    }
    sdtp_engine & E = *eng;
    const int64_t hd    = hp.n_embd_head_k;
    const int64_t n_old = E.cells[il].size();
    const int64_t n_kv  = n_old + n;
    ggml_tensor * kc = E.k[il];
    ggml_tensor * vc = E.v[il];

    // Append this run's K/V after the layer's cached cells.
    ggml_build_forward_expand(gf, ggml_cpy(ctx, ggml_reshape_2d(ctx, k, kc->ne[0], n),
                                           ggml_view_2d(ctx, kc, kc->ne[0], n, kc->nb[1], n_old * kc->nb[1])));
    ggml_build_forward_expand(gf, ggml_cpy(ctx, ggml_reshape_2d(ctx, v, vc->ne[0], n),
                                           ggml_view_2d(ctx, vc, vc->ne[0], n, vc->nb[1], n_old * vc->nb[1])));

    ggml_tensor * K = ggml_view_3d(ctx, kc, hd, hp.n_head_kv(il), n_kv, ggml_row_size(kc->type, hd), kc->nb[1], 0);
    ggml_tensor * V = ggml_view_3d(ctx, vc, hd, hp.n_head_kv(il), n_kv, ggml_row_size(vc->type, hd), vc->nb[1], 0);
    const mask_input m = E.mask(ctx, il, hp.is_swa(il), n_kv, n); // a copy: mask() may grow E.masks
    const float softcap = hp.attn_soft_cap ? hp.f_attn_logit_softcapping : 0.0f;

    if (il == scorer_layer) {
        // Mean over heads and the last scorer_win queries. The full causal
        // mask even on a sliding-window layer, so tokens beyond the window
        // are still ranked rather than all tied at 0.
        ggml_tensor * full = E.mask(ctx, il, false, n_kv, n).f32;
        scorer_attn = ggml_scale(ctx, sdtp_window_attention(ctx, q, K, full, scorer_win, kq_scale, softcap),
                                 1.0f / float(scorer_win * q->ne[1]));
    }
    if (layer_attn_win > 0 && (!layer_attn_on || layer_attn_on[il - first_layer])) {
        ggml_tensor * lm = layer_attn_swa == SDTP_SWA_OWN_MASK ? m.f32 : E.mask(ctx, il, false, n_kv, n).f32;
        layer_attn.push_back({il, sdtp_window_attention_heads(ctx, q, K, lm, layer_attn_win, layer_attn_sampled, layer_attn_stride,
                                                                    kq_scale, softcap)});
    }
    if (E.stats_mode != SDTP_ATTN_STATS_OFF) {
        // The attention this layer really pays (its own mask), for KV policies.
        const int win = E.stats_win > 0 ? std::min<int>(E.stats_win, n) : n;
        stats.push_back({il, sdtp_window_attention(ctx, q, K, m.f32, win, kq_scale, softcap)});
    }
    ggml_tensor * cur = ggml_flash_attn_ext(ctx, ggml_permute(ctx, q, 0, 2, 1, 3), ggml_permute(ctx, K, 0, 2, 1, 3),
                                            ggml_permute(ctx, V, 0, 2, 1, 3), m.f16, kq_scale, hp.f_max_alibi_bias, softcap);
    ggml_flash_attn_ext_set_prec(cur, GGML_PREC_F32);
    cur = ggml_reshape_2d(ctx, cur, cur->ne[0] * cur->ne[1], cur->ne[2] * cur->ne[3]);
    return linear(L.wo, L.bo, cur);
}

ggml_tensor * stage_graph::ffn_swiglu(int il, ggml_tensor * x) const {
    const auto & L = model.layers[il];
    ggml_tensor * up = linear(L.ffn_up, L.ffn_up_b, x);
    ggml_tensor * cur = ggml_swiglu_split(ctx, linear(L.ffn_gate, L.ffn_gate_b, x), up);
    return linear(L.ffn_down, L.ffn_down_b, cur);
}

ggml_tensor * stage_graph::ffn_geglu(int il, ggml_tensor * x) const {
    const auto & L = model.layers[il];
    ggml_tensor * up = linear(L.ffn_up, L.ffn_up_b, x);
    ggml_tensor * gate = linear(L.ffn_gate, L.ffn_gate_b, x);
    ggml_tensor * cur;
    if (grad_mode) {
        // GELU (tanh form, as ggml_gelu) = x·σ(2·√(2/π)·(x + 0.044715·x³)).
        ggml_tensor * inner = ggml_add(ctx, gate, ggml_scale(ctx, ggml_mul(ctx, gate, ggml_sqr(ctx, gate)), 0.044715f));
        cur = ggml_mul(ctx, ggml_mul(ctx, gate, sigmoid_d(ctx, ggml_scale(ctx, inner, 2.0f * sqrtf(2.0f / float(M_PI))))), up);
    } else {
        cur = ggml_geglu_split(ctx, gate, up);
    }
    return linear(L.ffn_down, L.ffn_down_b, cur);
}

ggml_tensor * sdtp_embed_tokens(stage_graph & g, ggml_tensor * tokens) {
    return ggml_get_rows(g.ctx, g.model.tok_embd, tokens);
}

ggml_tensor * sdtp_output_head(stage_graph & g, ggml_tensor * x) {
    return g.linear(g.model.output, g.model.output_b, g.rms_norm(x, g.model.output_norm));
}

// ---- C API ---------------------------------------------------------------

extern "C" {

const char * sdtp_engine_arch(const struct llama_model * model) {
    const stage_arch * a = sdtp_arch_for(*model);
    return a ? a->name : nullptr;
}

sdtp_engine * sdtp_engine_new(struct llama_context * lctx, int n_ctx, int n_threads, char * err, size_t n_err) {
    try {
        const llama_model & model = lctx->get_model();
        const stage_arch * arch = sdtp_arch_for(model);
        if (!arch) {
            sdtp_set_err(err, n_err, "architecture " + std::string(llm_arch_name(model.arch)) + " is not staged");
            return nullptr;
        }
        std::unique_ptr<sdtp_engine> e(new sdtp_engine(model, lctx->get_cparams(), arch, n_ctx));
        const int n_layer = e->hp.n_layer;
        e->cc.init(n_threads, std::max<size_t>(8192, size_t(n_layer) * 96), false);
        e->n_threads = n_threads;

        ggml_init_params kp = {size_t(2 * n_layer) * ggml_tensor_overhead(), nullptr, true};
        e->kv_ctx = ggml_init(kp);
        for (int il = 0; il < n_layer; il++) {
            e->k.push_back(ggml_new_tensor_2d(e->kv_ctx, GGML_TYPE_F16, e->hp.n_embd_k_gqa(il), n_ctx));
            e->v.push_back(ggml_new_tensor_2d(e->kv_ctx, GGML_TYPE_F16, e->hp.n_embd_v_gqa(il), n_ctx));
        }
        e->kv_buf = ggml_backend_alloc_ctx_tensors(e->kv_ctx, e->cc.cpu);
        if (!e->kv_buf) {
            sdtp_set_err(err, n_err, "cannot allocate the KV cache");
            return nullptr;
        }
        ggml_backend_buffer_clear(e->kv_buf, 0);
        const int starts[] = {0};
        sdtp_engine_reset(e.get(), starts, 1, nullptr, 0);
        return e.release();
    } catch (const std::exception & ex) {
        sdtp_set_err(err, n_err, ex.what());
    }
    return nullptr;
}

void sdtp_engine_free(sdtp_engine * e) { delete e; }

void sdtp_engine_set_threads(sdtp_engine * e, int n_threads) {
    ggml_backend_cpu_set_n_threads(e->cc.cpu, n_threads);
    e->n_threads = n_threads;
    if (e->timing_pool) e->use_timing_pool(true);
}

void sdtp_engine_set_abort_callback(sdtp_engine * e, ggml_abort_callback cb, void * data) {
    ggml_backend_cpu_set_abort_callback(e->cc.cpu, cb, data);
}

bool sdtp_engine_reset(sdtp_engine * e, const int * starts, int n_starts, char * err, size_t n_err) {
    const int n_layer = e->hp.n_layer;
    if (n_starts < 1 || starts[0] != 0) {
        sdtp_set_err(err, n_err, "segments must start at layer 0");
        return false;
    }
    for (int i = 1; i < n_starts; i++) {
        if (starts[i] <= starts[i - 1] || starts[i] >= n_layer) {
            sdtp_set_err(err, n_err, "segment starts must increase and stay below n_layer");
            return false;
        }
    }
    e->segs.clear();
    e->seg_of.assign(n_layer, 0);
    for (int i = 0; i < n_starts; i++) {
        const int last = i + 1 < n_starts ? starts[i + 1] : n_layer;
        e->segs.push_back({starts[i], last});
        for (int il = starts[i]; il < last; il++) e->seg_of[il] = i;
    }
    e->cells.assign(n_layer, {});
    e->attn_scores.assign(n_layer, {});
    return true;
}

// time_head observes the heads' input and output nodes to time the nodes
// between them (ggml_backend_sched_eval_callback). Each observed node makes
// the scheduler pause and restart the graph; the interval from the scores
// to a one-element op right after them is that pause alone, and is
// subtracted, so what remains is the heads' compute.
static bool time_head(ggml_tensor * t, bool ask, void * user_data) {
    auto * e = (sdtp_engine *) user_data;
    if (ask) {
        return t == e->timed_from || t == e->timed_to || t == e->timed_pause;
    }
    const int64_t now = ggml_time_us();
    if (t == e->timed_from) {
        e->t_from = now;
    } else if (t == e->timed_to) {
        e->t_to = now;
        e->head_us += now - e->t_from;
    } else if (t == e->timed_pause) {
        e->head_us -= now - e->t_to;
    }
    return true;
}

void sdtp_engine_time_heads(sdtp_engine * e, bool on) {
    e->time_heads = on;
    ggml_backend_sched_set_eval_callback(e->cc.sched, on ? time_head : nullptr, on ? e : nullptr);
    e->use_timing_pool(on);
}

int64_t sdtp_engine_head_us(sdtp_engine * e) {
    const int64_t us = e->head_us;
    e->head_us = 0;
    return us;
}

// head_scores is a predictor on the residual stream x [d, n], followed by
// the context values c [k, n] when the heads read some: keep − drop per
// token, so only n floats leave the graph.
static ggml_tensor * head_scores(ggml_context * ctx, const head & hd, ggml_tensor * x, ggml_tensor * c) {
    const int64_t n = x->ne[1];
    ggml_tensor * y = ggml_mul_mat(ctx, hd.w1, x);
    // A concatenated [d + k, n] input would copy x and give the matmul a
    // width off the fast kernels' multiples (measured nearly 2× slower).
    if (c) y = ggml_add(ctx, y, ggml_mul_mat(ctx, hd.w1c, c));
    y = ggml_gelu_erf(ctx, ggml_add(ctx, y, hd.b1));
    y = ggml_add(ctx, ggml_mul_mat(ctx, hd.w2, y), hd.b2); // [2, n]
    return ggml_sub(ctx, ggml_view_2d(ctx, y, 1, n, y->nb[1], 0), ggml_view_2d(ctx, y, 1, n, y->nb[1], ggml_element_size(y)));
}

bool sdtp_engine_set_heads(sdtp_engine * e, int n_heads, const int * layers, int h, int k,
                           const float * w1, const float * b1, const float * w2, const float * b2,
                           char * err, size_t n_err) {
    const int64_t d = e->hp.n_embd;
    e->free_heads();
    if (n_heads <= 0 || h <= 0 || k < 0) {
        sdtp_set_err(err, n_err, "no heads");
        return false;
    }
    e->head_ctx = k;
    ggml_init_params p = {size_t(5 * n_heads) * ggml_tensor_overhead(), nullptr, true};
    e->heads_ctx = ggml_init(p);
    for (int i = 0; i < n_heads; i++) {
        if (layers[i] < 1 || layers[i] >= int(e->hp.n_layer) || e->heads.count(layers[i])) {
            e->free_heads();
            sdtp_set_err(err, n_err, "head layers must be distinct and inside the model");
            return false;
        }
        e->heads[layers[i]] = {
            ggml_new_tensor_2d(e->heads_ctx, GGML_TYPE_F32, d, h),
            k > 0 ? ggml_new_tensor_2d(e->heads_ctx, GGML_TYPE_F32, k, h) : nullptr,
            ggml_new_tensor_1d(e->heads_ctx, GGML_TYPE_F32, h),
            ggml_new_tensor_2d(e->heads_ctx, GGML_TYPE_F32, h, 2), ggml_new_tensor_1d(e->heads_ctx, GGML_TYPE_F32, 2)};
    }
    e->heads_buf = ggml_backend_alloc_ctx_tensors(e->heads_ctx, e->cc.cpu);
    if (!e->heads_buf) {
        e->free_heads();
        sdtp_set_err(err, n_err, "cannot allocate the predictor heads");
        return false;
    }
    for (int i = 0; i < n_heads; i++) {
        const head & hd = e->heads[layers[i]];
        // Rows of w1 are [d stream columns, k context columns].
        std::vector<float> ws(size_t(h) * d), wc(size_t(h) * k);
        for (int j = 0; j < h; j++) {
            const float * row = w1 + (size_t(i) * h + j) * (d + k);
            std::copy(row, row + d, ws.begin() + size_t(j) * d);
            std::copy(row + d, row + d + k, wc.begin() + size_t(j) * k);
        }
        ggml_backend_tensor_set(hd.w1, ws.data(), 0, ggml_nbytes(hd.w1));
        if (hd.w1c) ggml_backend_tensor_set(hd.w1c, wc.data(), 0, ggml_nbytes(hd.w1c));
        ggml_backend_tensor_set(hd.b1, b1 + size_t(i) * h, 0, ggml_nbytes(hd.b1));
        ggml_backend_tensor_set(hd.w2, w2 + size_t(i) * 2 * h, 0, ggml_nbytes(hd.w2));
        ggml_backend_tensor_set(hd.b2, b2 + size_t(i) * 2, 0, ggml_nbytes(hd.b2));
    }
    return true;
}

int sdtp_engine_run(sdtp_engine * e, int first, int last,
                    const int32_t * tokens, const float * hidden_in, const int32_t * pos, int n,
                    float * hidden_out, float * logits_out, bool all_logits, float * attn_out, int n_win,
                    float * head_out, const float * head_ctx,
                    float * layer_attn_out, int layer_attn_win, int layer_attn_sampled, int layer_attn_stride,
                    sdtp_swa_attn layer_attn_swa, const bool * layer_attn_on, char * err, size_t n_err) {
    const int n_layer = e->hp.n_layer;
    const int n_embd  = e->hp.n_embd;
    if (n <= 0 || first < 0 || last > n_layer || first >= last) {
        sdtp_set_err(err, n_err, "bad layer range or token count");
        return -1;
    }
    if (e->segs[e->seg_of[first]].first != first || (last < n_layer && e->segs[e->seg_of[last]].first != last)) {
        sdtp_set_err(err, n_err, "a run must cover whole segments");
        return -1;
    }
    if ((first == 0) != (tokens != nullptr) || (first > 0 && !hidden_in)) {
        sdtp_set_err(err, n_err, "the first segment takes tokens, later ones hidden states");
        return -1;
    }
    if (logits_out && last != n_layer) {
        sdtp_set_err(err, n_err, "logits need the last layer");
        return -1;
    }
    if (attn_out && (n_win <= 0 || n_win > n)) {
        sdtp_set_err(err, n_err, "attention window must be in [1, n]");
        return -1;
    }
    // Go's Engine.Run refuses these first with the caller's numbers; this
    // copy guards the buffer indexing below for any other caller of the C API.
    if (layer_attn_out && (layer_attn_win <= 0 || layer_attn_win > n || layer_attn_sampled < 0 ||
                           (layer_attn_sampled > 0 && (layer_attn_stride <= 0 ||
                                                       layer_attn_win + int64_t(layer_attn_sampled - 1) * layer_attn_stride >= n)))) {
        sdtp_set_err(err, n_err, "layer attention: the window and its sampled queries must lie within the run");
        return -1;
    }
    if (head_out && !e->heads.count(last)) {
        sdtp_set_err(err, n_err, "no predictor head for layer " + std::to_string(last));
        return -1;
    }
    if (head_out && (e->head_ctx > 0) != (head_ctx != nullptr)) {
        sdtp_set_err(err, n_err, "the predictor heads read " + std::to_string(e->head_ctx) + " context values per token");
        return -1;
    }
    for (int il = first; il < last; il++) {
        if (int(e->cells[il].size()) + n > e->n_ctx) {
            sdtp_set_err(err, n_err, "context full: layer cache has no room");
            return -1;
        }
    }
    const int32_t n_vocab = e->model.vocab.n_tokens();
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0 || (tokens && (tokens[i] < 0 || tokens[i] >= n_vocab))) {
            sdtp_set_err(err, n_err, "token id or position out of range");
            return -1;
        }
    }

    try {
        ggml_init_params gp = {e->cc.meta.size(), e->cc.meta.data(), true};
        ggml_context * ctx = ggml_init(gp);
        ggml_cgraph * gf = ggml_new_graph_custom(ctx, e->cc.graph_size, false);
        e->masks.clear();
        e->run_pos = pos;
        e->run_n = n;

        stage_graph g{ctx, e->model, e->hp, e->cp, e, n, nullptr, gf};
        g.pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
        ggml_set_input(g.pos);
        if (attn_out) {
            g.scorer_layer = last - 1;
            g.scorer_win = n_win;
        }
        if (layer_attn_out) {
            g.layer_attn_win = layer_attn_win;
            g.layer_attn_sampled = layer_attn_sampled;
            g.layer_attn_stride = layer_attn_stride;
            g.layer_attn_swa = layer_attn_swa;
            g.layer_attn_on = layer_attn_on;
            g.first_layer = first;
        }
        if (logits_out && !all_logits && !hidden_out) g.last_only = last - 1;

        ggml_tensor * inp;
        ggml_tensor * x;
        if (first == 0) {
            inp = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
            ggml_set_input(inp);
            x = e->arch->embed(g, inp);
        } else {
            inp = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_embd, n);
            ggml_set_input(inp);
            x = inp;
        }
        for (int il = first; il < last; il++) {
            x = e->arch->block(g, il, x);
        }
        if (hidden_out) {
            ggml_set_output(x);
        }
        ggml_build_forward_expand(gf, x);

        ggml_tensor * logits = nullptr;
        if (logits_out) {
            ggml_tensor * rows = all_logits || x->ne[1] == 1 ? x : ggml_view_2d(ctx, x, n_embd, 1, x->nb[1], (n - 1) * x->nb[1]);
            logits = e->arch->head(g, rows);
            ggml_set_output(logits);
            ggml_build_forward_expand(gf, logits);
        }

        ggml_tensor * attn = g.scorer_attn; // [cells] of layer last-1, mean over the window
        if (attn) {
            ggml_set_output(attn);
            ggml_build_forward_expand(gf, attn);
        }
        for (const auto & la : g.layer_attn) {
            ggml_set_output(la.second);
            ggml_build_forward_expand(gf, la.second);
        }
        for (const auto & st : g.stats) {
            ggml_set_output(st.second);
            ggml_build_forward_expand(gf, st.second);
        }

        ggml_tensor * scores = nullptr;
        ggml_tensor * ctx_in = nullptr;
        e->timed_from = e->timed_to = e->timed_pause = nullptr;
        if (head_out) {
            if (e->head_ctx > 0) {
                ctx_in = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, e->head_ctx, n);
                ggml_set_input(ctx_in);
            }
            scores = head_scores(ctx, e->heads.at(last), x, ctx_in);
            ggml_set_output(scores);
            ggml_build_forward_expand(gf, scores);
            if (e->time_heads) {
                e->timed_from = x;
                e->timed_to = scores;
                e->timed_pause = ggml_scale(ctx, ggml_view_1d(ctx, scores, 1, 0), 1.0f);
                ggml_build_forward_expand(gf, e->timed_pause);
            }
        }

        ggml_backend_sched_reset(e->cc.sched);
        if (!ggml_backend_sched_alloc_graph(e->cc.sched, gf)) {
            ggml_free(ctx);
            sdtp_set_err(err, n_err, "cannot allocate the stage graph");
            return -1;
        }
        ggml_backend_tensor_set(g.pos, pos, 0, n * sizeof(int32_t));
        if (first == 0) {
            ggml_backend_tensor_set(inp, tokens, 0, n * sizeof(int32_t));
        } else {
            ggml_backend_tensor_set(inp, hidden_in, 0, size_t(n) * n_embd * sizeof(float));
        }
        if (ctx_in) ggml_backend_tensor_set(ctx_in, head_ctx, 0, ggml_nbytes(ctx_in));
        for (const auto & m : e->masks) e->fill_mask(m);

        const ggml_status st = ggml_backend_sched_graph_compute(e->cc.sched, gf);
        if (st == GGML_STATUS_ABORTED) {
            ggml_free(ctx);
            return 1;
        }
        if (st != GGML_STATUS_SUCCESS) {
            ggml_free(ctx);
            sdtp_set_err(err, n_err, "graph compute failed: " + std::string(ggml_status_to_string(st)));
            return -1;
        }
        if (hidden_out) ggml_backend_tensor_get(x, hidden_out, 0, size_t(n) * n_embd * sizeof(float));
        if (logits) ggml_backend_tensor_get(logits, logits_out, 0, ggml_nbytes(logits));
        if (attn) ggml_backend_tensor_get(attn, attn_out, 0, ggml_nbytes(attn));
        if (scores) ggml_backend_tensor_get(scores, head_out, 0, ggml_nbytes(scores));
        for (const auto & la : g.layer_attn) {
            ggml_backend_tensor_get(la.second, layer_attn_out, 0, ggml_nbytes(la.second));
            layer_attn_out += ggml_nelements(la.second);
        }
        for (const auto & st : g.stats) {
            std::vector<float> & acc = e->attn_scores[st.first];
            std::vector<float> run(ggml_nelements(st.second));
            ggml_backend_tensor_get(st.second, run.data(), 0, ggml_nbytes(st.second));
            if (e->stats_mode == SDTP_ATTN_STATS_REPLACE) {
                acc = std::move(run);
            } else {
                acc.resize(run.size(), 0.0f); // this run's cells start at 0
                for (size_t c = 0; c < run.size(); c++) acc[c] += run[c];
            }
        }
        ggml_free(ctx);

        for (int il = first; il < last; il++) {
            e->cells[il].insert(e->cells[il].end(), pos, pos + n);
            // Without statistics this run, the layer's scores (if any) still
            // cover every cell: the new ones start at 0.
            if (!e->attn_scores[il].empty()) e->attn_scores[il].resize(e->cells[il].size(), 0.0f);
        }
        return 0;
    } catch (const std::exception & ex) {
        sdtp_set_err(err, n_err, ex.what());
    }
    return -1;
}

void sdtp_engine_layer_shape(const sdtp_engine * e, int il, int * out5) {
    out5[0] = e->hp.n_head(il);
    out5[1] = e->hp.n_head_kv(il);
    out5[2] = e->hp.n_embd_head_k;
    out5[3] = e->hp.n_ff(il);
    out5[4] = e->hp.is_swa(il) ? e->hp.n_swa : 0;
}

int sdtp_engine_cells(const sdtp_engine * e, int layer) {
    if (layer < 0 || layer >= int(e->hp.n_layer)) return -1;
    return int(e->cells[layer].size());
}

int64_t sdtp_engine_kv_bytes(const sdtp_engine * e) {
    int64_t total = 0;
    for (int il = 0; il < int(e->hp.n_layer); il++) {
        total += int64_t(e->cells[il].size()) * (e->k[il]->nb[1] + e->v[il]->nb[1]);
    }
    return total;
}

// ---- KV-cache compression (kv.h, docs/KV.md) -------------------------------

void sdtp_engine_track_attention(sdtp_engine * e, sdtp_attn_stats mode, int n_win) {
    e->stats_mode = mode;
    e->stats_win = n_win;
}

void sdtp_engine_cell_info(const sdtp_engine * e, int layer, int32_t * pos_out, float * scores_out) {
    if (layer < 0 || layer >= int(e->hp.n_layer)) return;
    const auto & cells = e->cells[layer];
    const auto & scores = e->attn_scores[layer];
    for (size_t c = 0; c < cells.size(); c++) {
        if (pos_out) pos_out[c] = cells[c];
        if (scores_out) scores_out[c] = c < scores.size() ? scores[c] : 0.0f;
    }
}

bool sdtp_engine_evict(sdtp_engine * e, int layer, const int * keep, int n_keep, char * err, size_t n_err) {
    if (layer < 0 || layer >= int(e->hp.n_layer)) {
        sdtp_set_err(err, n_err, "layer out of range");
        return false;
    }
    const int n_cells = int(e->cells[layer].size());
    for (int i = 0; i < n_keep; i++) {
        if (keep[i] < 0 || keep[i] >= n_cells || (i > 0 && keep[i] <= keep[i - 1])) {
            sdtp_set_err(err, n_err, "cells to keep must be increasing indices of the layer's cells");
            return false;
        }
    }
    if (!ggml_backend_buffer_is_host(e->kv_buf)) {
        sdtp_set_err(err, n_err, "the KV cache is not in host memory");
        return false;
    }
    sdtp_kv_compact(e->k[layer], e->v[layer], e->cells[layer], e->attn_scores[layer], keep, n_keep);
    return true;
}

} // extern "C"

// ---- prefix reuse and context shift (stage.h) -------------------------------

extern "C" {

int sdtp_engine_remove(sdtp_engine * e, int p0, int p1) {
    int dropped = 0;
    std::vector<int> keep;
    for (int il = 0; il < int(e->hp.n_layer); il++) {
        const auto & cells = e->cells[il];
        keep.clear();
        for (int c = 0; c < int(cells.size()); c++) {
            if (cells[c] < p0 || (p1 >= 0 && cells[c] >= p1)) keep.push_back(c);
        }
        dropped += int(cells.size() - keep.size());
        if (keep.size() < cells.size()) {
            sdtp_kv_compact(e->k[il], e->v[il], e->cells[il], e->attn_scores[il], keep.data(), int(keep.size()));
        }
    }
    return dropped;
}

bool sdtp_engine_shift(sdtp_engine * e, int p0, int delta, char * err, size_t n_err) {
    const int n_layer = e->hp.n_layer;
    // first[il]: the first cell at a position >= p0 (cells increase).
    std::vector<int> first(n_layer);
    int n_max = 0;
    for (int il = 0; il < n_layer; il++) {
        const auto & cells = e->cells[il];
        int c = 0;
        while (c < int(cells.size()) && cells[c] < p0) c++;
        first[il] = c;
        if (c < int(cells.size())) {
            const int lower = c > 0 ? cells[c - 1] : -1;
            if (cells[c] + delta <= lower) {
                sdtp_set_err(err, n_err, "shift would move cells onto or before earlier ones (remove them first)");
                return false;
            }
            n_max = std::max(n_max, int(cells.size()) - c);
        }
    }
    if (n_max == 0 || delta == 0) return true;
    try {
        ggml_init_params gp = {e->cc.meta.size(), e->cc.meta.data(), true};
        ggml_context * ctx = ggml_init(gp);
        ggml_cgraph * gf = ggml_new_graph_custom(ctx, e->cc.graph_size, false);
        ggml_tensor * shift = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_max);
        ggml_set_input(shift);
        const int64_t hd = e->hp.n_embd_head_k;
        for (int il = 0; il < n_layer; il++) {
            const int m = int(e->cells[il].size()) - first[il];
            if (m == 0) continue;
            ggml_tensor * kc = e->k[il];
            ggml_tensor * k = ggml_view_3d(ctx, kc, hd, e->hp.n_head_kv(il), m, ggml_row_size(kc->type, hd), kc->nb[1],
                                           size_t(first[il]) * kc->nb[1]);
            // The same rotation the layer applied at its positions, by delta:
            // RoPE angles add, so rotating by delta moves a key from p to p + delta.
            ggml_tensor * r = ggml_rope_ext_inplace(ctx, k, ggml_view_1d(ctx, shift, m, 0), e->model.get_rope_factors(e->cp, il),
                                                    e->hp.n_rot, e->hp.rope_type, e->cp.n_ctx_orig_yarn,
                                                    e->model.get_rope_freq_base(e->cp, il), e->model.get_rope_freq_scale(e->cp, il),
                                                    e->cp.yarn_ext_factor, e->cp.yarn_attn_factor, e->cp.yarn_beta_fast, e->cp.yarn_beta_slow);
            ggml_build_forward_expand(gf, r);
        }
        ggml_backend_sched_reset(e->cc.sched);
        if (!ggml_backend_sched_alloc_graph(e->cc.sched, gf)) {
            ggml_free(ctx);
            sdtp_set_err(err, n_err, "cannot allocate the shift graph");
            return false;
        }
        std::vector<int32_t> d(n_max, delta);
        ggml_backend_tensor_set(shift, d.data(), 0, d.size() * sizeof(int32_t));
        const ggml_status st = ggml_backend_sched_graph_compute(e->cc.sched, gf);
        ggml_free(ctx);
        if (st != GGML_STATUS_SUCCESS) {
            sdtp_set_err(err, n_err, "shift graph failed: " + std::string(ggml_status_to_string(st)));
            return false;
        }
    } catch (const std::exception & ex) {
        sdtp_set_err(err, n_err, ex.what());
        return false;
    }
    for (int il = 0; il < n_layer; il++) {
        for (size_t c = first[il]; c < e->cells[il].size(); c++) e->cells[il][c] += delta;
    }
    return true;
}

} // extern "C"

// ---- saving and restoring the caches (stage.h) ------------------------------

extern "C" {

int64_t sdtp_engine_row_bytes(const sdtp_engine * e, int il, bool v) {
    if (il < 0 || il >= int(e->hp.n_layer)) return -1;
    return int64_t(v ? e->v[il]->nb[1] : e->k[il]->nb[1]);
}

void sdtp_engine_layer_get(const sdtp_engine * e, int il, int32_t * pos, void * k, void * v) {
    if (il < 0 || il >= int(e->hp.n_layer)) return;
    const auto & cells = e->cells[il];
    if (pos) std::copy(cells.begin(), cells.end(), pos);
    if (k) ggml_backend_tensor_get(e->k[il], k, 0, cells.size() * e->k[il]->nb[1]);
    if (v) ggml_backend_tensor_get(e->v[il], v, 0, cells.size() * e->v[il]->nb[1]);
}

bool sdtp_engine_layer_set(sdtp_engine * e, int il, const int32_t * pos, int n, const void * k, const void * v,
                           char * err, size_t n_err) {
    if (il < 0 || il >= int(e->hp.n_layer) || n < 0 || n > e->n_ctx) {
        sdtp_set_err(err, n_err, "layer out of range or more cells than the context holds");
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (pos[i] < 0 || (i > 0 && pos[i] <= pos[i - 1])) {
            sdtp_set_err(err, n_err, "cell positions must increase");
            return false;
        }
    }
    if (n > 0) {
        ggml_backend_tensor_set(e->k[il], k, 0, size_t(n) * e->k[il]->nb[1]);
        ggml_backend_tensor_set(e->v[il], v, 0, size_t(n) * e->v[il]->nb[1]);
    }
    e->cells[il].assign(pos, pos + n);
    e->attn_scores[il].clear();
    return true;
}

} // extern "C"
