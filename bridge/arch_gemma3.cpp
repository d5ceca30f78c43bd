// gemma3: embeddings scaled by sqrt(n_embd); Q/K norms; norms after
// attention and after the FFN as well as before; GeGLU; sliding-window
// layers with their own RoPE base (handled by rope() and the masks);
// optional final logit soft-capping.
#include "stage_graph.h"

#include <cmath>

static ggml_tensor * gemma3_embed(stage_graph & g, ggml_tensor * tokens) {
    return ggml_scale(g.ctx, sdtp_embed_tokens(g, tokens), sqrtf(float(g.hp.n_embd)));
}

static ggml_tensor * gemma3_block(stage_graph & g, int il, ggml_tensor * x) {
    const auto & L = g.model.layers[il];

    ggml_tensor * cur = g.rms_norm(x, L.attn_norm);
    ggml_tensor * q, * k, * v;
    g.qkv(il, cur, &q, &k, &v);
    q = g.rope(g.rms_norm(q, L.attn_q_norm), il);
    k = g.rope(g.rms_norm(k, L.attn_k_norm), il);
    q = ggml_scale(g.ctx, q, g.hp.f_attention_scale);
    cur = g.out_rows(il, g.attention(il, q, k, v, 1.0f));

    ggml_tensor * sa_out = ggml_add(g.ctx, g.rms_norm(cur, L.attn_post_norm), g.out_rows(il, x));
    cur = g.ffn_geglu(il, g.rms_norm(sa_out, L.ffn_norm));
    return ggml_add(g.ctx, g.rms_norm(cur, L.ffn_post_norm), sa_out);
}

static ggml_tensor * gemma3_head(stage_graph & g, ggml_tensor * x) {
    ggml_tensor * cur = sdtp_output_head(g, x);
    if (const float cap = g.hp.f_final_logit_softcapping) {
        cur = ggml_scale(g.ctx, g.tanh(ggml_scale(g.ctx, cur, 1.0f / cap)), cap);
    }
    return cur;
}

const stage_arch sdtp_arch_gemma3 = {"gemma3", gemma3_embed, gemma3_block, gemma3_head};
