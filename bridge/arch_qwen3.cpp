// qwen3: the llama block with RMS norms on Q and K (per head, before RoPE)
// and no Q/K/V biases.
#include "stage_graph.h"

#include <cmath>

static ggml_tensor * qwen3_block(stage_graph & g, int il, ggml_tensor * x) {
    const auto & L = g.model.layers[il];
    const int64_t hd = g.hp.n_embd_head_k;

    ggml_tensor * cur = g.rms_norm(x, L.attn_norm);
    ggml_tensor * q, * k, * v;
    g.qkv(il, cur, &q, &k, &v);
    q = g.rope(g.rms_norm(q, L.attn_q_norm), il);
    k = g.rope(g.rms_norm(k, L.attn_k_norm), il);
    cur = g.out_rows(il, g.attention(il, q, k, v, 1.0f / sqrtf(float(hd))));

    ggml_tensor * ffn_in = ggml_add(g.ctx, cur, g.out_rows(il, x));
    cur = g.ffn_swiglu(il, g.rms_norm(ffn_in, L.ffn_norm));
    return ggml_add(g.ctx, cur, ffn_in);
}

const stage_arch sdtp_arch_qwen3 = {"qwen3", sdtp_embed_tokens, qwen3_block, sdtp_output_head};
