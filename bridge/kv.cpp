#include "kv.h"

#include <cstring>

// window_probs is softmax(q·K) of n_win queries, row end − 1 and every
// stride-th before it: [n_kv, n_win, H].
static ggml_tensor * window_probs(ggml_context * ctx, ggml_tensor * q, ggml_tensor * K, ggml_tensor * mask,
                                  int64_t end, int n_win, int stride, float kq_scale, float softcap) {
    const int64_t n_kv = K->ne[2];
    const int64_t first = end - 1 - int64_t(n_win - 1) * stride;
    ggml_tensor * qw = ggml_view_3d(ctx, q, q->ne[0], q->ne[1], n_win, q->nb[1], stride * q->nb[2], first * q->nb[2]);
    ggml_tensor * kq = ggml_mul_mat(ctx, ggml_permute(ctx, K, 0, 2, 1, 3), ggml_permute(ctx, qw, 0, 2, 1, 3)); // [n_kv, n_win, H]
    ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
    if (softcap > 0.0f) {
        // As flash attention does: cap · tanh(scale · q·k / cap).
        kq = ggml_scale(ctx, ggml_tanh(ctx, ggml_scale(ctx, kq, kq_scale / softcap)), softcap);
        kq_scale = 1.0f;
    }
    ggml_tensor * mw = ggml_view_2d(ctx, mask, n_kv, n_win, stride * mask->nb[1], first * mask->nb[1]);
    if (stride > 1) mw = ggml_cont(ctx, mw); // soft_max takes a contiguous mask
    return ggml_soft_max_ext(ctx, kq, mw, kq_scale, 0.0f);
}

ggml_tensor * sdtp_window_attention(ggml_context * ctx, ggml_tensor * q, ggml_tensor * K, ggml_tensor * mask,
                                    int n_win, float kq_scale, float softcap) {
    ggml_tensor * p = window_probs(ctx, q, K, mask, q->ne[2], n_win, 1, kq_scale, softcap);
    p = ggml_cont(ctx, ggml_transpose(ctx, ggml_reshape_2d(ctx, p, p->ne[0], p->ne[1] * p->ne[2])));
    return ggml_sum_rows(ctx, p);
}

static ggml_tensor * heads_sum(ggml_context * ctx, ggml_tensor * p) {
    return ggml_sum_rows(ctx, ggml_cont(ctx, ggml_permute(ctx, p, 1, 0, 2, 3))); // [1, n_kv, H]
}

ggml_tensor * sdtp_window_attention_heads(ggml_context * ctx, ggml_tensor * q, ggml_tensor * K, ggml_tensor * mask,
                                          int n_win, int n_sampled, int stride, float kq_scale, float softcap) {
    const int64_t n = q->ne[2];
    ggml_tensor * sum = heads_sum(ctx, window_probs(ctx, q, K, mask, n, n_win, 1, kq_scale, softcap));
    if (n_sampled > 0) {
        // Each sampled query stands for the stride tokens around it.
        ggml_tensor * sampled = heads_sum(ctx, window_probs(ctx, q, K, mask, n - n_win, n_sampled, stride, kq_scale, softcap));
        sum = ggml_add(ctx, sum, ggml_scale(ctx, sampled, float(stride)));
    }
    return sum;
}

void sdtp_kv_compact(ggml_tensor * k, ggml_tensor * v, std::vector<int32_t> & cells, std::vector<float> & scores,
                     const int * keep, int n_keep) {
    auto * kd = (char *) k->data;
    auto * vd = (char *) v->data;
    // Move each run of consecutive survivors with one memmove per tensor;
    // keep[i] >= i, so rows only move down and nothing is overwritten
    // before it is read.
    for (int i = 0; i < n_keep;) {
        int j = i + 1;
        while (j < n_keep && keep[j] == keep[j - 1] + 1) j++;
        const int src = keep[i], len = j - i;
        if (src != i) {
            memmove(kd + i * k->nb[1], kd + src * k->nb[1], len * k->nb[1]);
            memmove(vd + i * v->nb[1], vd + src * v->nb[1], len * v->nb[1]);
            memmove(&cells[i], &cells[src], len * sizeof(cells[0]));
            if (!scores.empty()) memmove(&scores[i], &scores[src], len * sizeof(scores[0]));
        }
        i = j;
    }
    cells.resize(n_keep);
    if (!scores.empty()) scores.resize(n_keep);
}
