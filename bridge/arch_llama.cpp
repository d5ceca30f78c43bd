// llama (Llama 2/3, Mistral, TinyLlama) and qwen2: pre-norm blocks with
// RoPE attention and a SwiGLU FFN. qwen2 differs only by Q/K/V biases,
// which linear() applies when the model has them.
#include "stage_graph.h"

#include <cmath>

static ggml_tensor * llama_block(stage_graph & g, int il, ggml_tensor * x) {
    const auto & L = g.model.layers[il];
    const int64_t hd = g.hp.n_embd_head_k;

    ggml_tensor * cur = g.rms_norm(x, L.attn_norm);
    ggml_tensor * q, * k, * v;
    g.qkv(il, cur, &q, &k, &v);
    q = g.rope(q, il);
    k = g.rope(k, il);
    const float kq_scale = g.hp.f_attention_scale == 0.0f ? 1.0f / sqrtf(float(hd)) : g.hp.f_attention_scale;
    cur = g.out_rows(il, g.attention(il, q, k, v, kq_scale));

    ggml_tensor * ffn_in = ggml_add(g.ctx, cur, g.out_rows(il, x));
    cur = g.ffn_swiglu(il, g.rms_norm(ffn_in, L.ffn_norm));
    return ggml_add(g.ctx, cur, ffn_in);
}

const stage_arch sdtp_arch_llama = {"llama", sdtp_embed_tokens, llama_block, sdtp_output_head};
const stage_arch sdtp_arch_qwen2 = {"qwen2", sdtp_embed_tokens, llama_block, sdtp_output_head};
