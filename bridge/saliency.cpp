// The gradient pass behind saliency (stage.h, sdtp_grad_*): the model's
// forward built by the same per-architecture block builders in
// differentiable mode, the LM loss, and ggml's automatic differentiation
// back to the residual streams entering the requested layers.
#include "stage.h"
#include "stage_graph.h"

#include <cmath>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "llama-context.h"

struct sdtp_grad {
    const llama_model   & model;
    llama_cparams         cp;
    const stage_arch    * arch;
    cpu_compute           cc;

    sdtp_grad(const llama_model & m, const llama_cparams & c, const stage_arch * a) : model(m), cp(c), arch(a) {}
};

// causal_mask fills an [n, n] mask: row i sees positions j <= i, and with
// swa only those inside the sliding window.
static std::vector<float> causal_mask(const llama_hparams & hp, int n, bool swa) {
    std::vector<float> m(size_t(n) * n, -INFINITY);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j <= i; j++) {
            if (sdtp_can_attend(hp, j, i, swa)) m[size_t(i) * n + j] = 0.0f;
        }
    }
    return m;
}

extern "C" {

sdtp_grad * sdtp_grad_new(struct llama_context * lctx, int n_threads, char * err, size_t n_err) {
    try {
        const llama_model & model = lctx->get_model();
        const stage_arch * arch = sdtp_arch_for(model);
        if (!arch) {
            sdtp_set_err(err, n_err, "architecture " + std::string(llm_arch_name(model.arch)) + " is not staged");
            return nullptr;
        }
        std::unique_ptr<sdtp_grad> g(new sdtp_grad(model, lctx->get_cparams(), arch));
        // The backward pass roughly triples the forward's nodes.
        g->cc.init(n_threads, std::max<size_t>(16384, size_t(model.hparams.n_layer) * 1024), true);
        return g.release();
    } catch (const std::exception & ex) {
        sdtp_set_err(err, n_err, ex.what());
    }
    return nullptr;
}

void sdtp_grad_free(sdtp_grad * g) { delete g; }

int sdtp_grad_run(sdtp_grad * G, const int32_t * tokens, int n, int loss_from, const int * layers, int n_layers,
                  const float * delta, double * loss_out, float * hidden_out, float * grad_out,
                  char * err, size_t n_err) {
    const llama_hparams & hp = G->model.hparams;
    const int n_layer = hp.n_layer;
    const int64_t d = hp.n_embd;
    const int32_t n_vocab = G->model.vocab.n_tokens();
    if (n < 2 || loss_from < 0 || loss_from > n - 2) {
        sdtp_set_err(err, n_err, "a gradient pass needs at least 2 tokens and a loss over at least one prediction");
        return -1;
    }
    for (int k = 0; k < n_layers; k++) {
        if (layers[k] < 0 || layers[k] >= n_layer || (k > 0 && layers[k] <= layers[k - 1])) {
            sdtp_set_err(err, n_err, "layers must increase and lie inside the model");
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            sdtp_set_err(err, n_err, "token id out of range");
            return -1;
        }
    }

    ggml_context * ctx = nullptr;
    try {
        ggml_init_params gp = {G->cc.meta.size(), G->cc.meta.data(), true};
        ctx = ggml_init(gp);
        const bool backward = grad_out != nullptr;
        ggml_cgraph * gf = ggml_new_graph_custom(ctx, G->cc.graph_size, backward);

        stage_graph g{ctx, G->model, hp, G->cp, nullptr, n, nullptr, gf};
        g.grad_mode = true;
        g.pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
        ggml_set_input(g.pos);
        g.mask_full = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n);
        ggml_set_input(g.mask_full);
        g.mask_swa = g.mask_full;
        if (hp.swa_type != LLAMA_SWA_TYPE_NONE) {
            g.mask_swa = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, n);
            ggml_set_input(g.mask_swa);
        }
        ggml_tensor * inp = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n);
        ggml_set_input(inp);

        // The residual stream entering each requested layer, plus a delta
        // the loss is differentiated by: d loss / d delta = d loss / d x.
        std::vector<ggml_tensor *> hidden, deltas;
        ggml_tensor * x = G->arch->embed(g, inp);
        for (int il = 0, k = 0; il < n_layer; il++) {
            if (k < n_layers && layers[k] == il) {
                x = ggml_cont(ctx, x);
                ggml_set_output(x);
                ggml_tensor * dx = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, d, n);
                ggml_set_input(dx);
                if (backward) ggml_set_param(dx);
                hidden.push_back(x);
                deltas.push_back(dx);
                x = ggml_add(ctx, x, dx);
                k++;
            }
            x = G->arch->block(g, il, x);
        }

        // Row i predicts token i+1: logits of rows loss_from..n-2 against
        // one-hot labels.
        const int n_loss = n - 1 - loss_from;
        ggml_tensor * logits = G->arch->head(g, ggml_view_2d(ctx, x, d, n_loss, x->nb[1], loss_from * x->nb[1]));
        ggml_tensor * labels = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_vocab, n_loss);
        ggml_set_input(labels);
        ggml_tensor * loss = ggml_cross_entropy_loss(ctx, logits, labels);
        ggml_set_output(loss);
        ggml_build_forward_expand(gf, loss);

        std::vector<ggml_tensor *> grads;
        ggml_tensor * loss_grad = nullptr;
        if (backward) {
            ggml_set_loss(loss);
            ggml_build_backward_expand(ctx, gf, nullptr);
            for (ggml_tensor * dx : deltas) {
                ggml_tensor * gr = ggml_graph_get_grad(gf, dx);
                if (!gr) throw std::runtime_error("the loss does not depend on a requested layer");
                ggml_set_output(gr);
                grads.push_back(gr);
            }
            loss_grad = ggml_graph_get_grad_acc(gf, loss);
            ggml_set_input(loss_grad);
        }

        ggml_backend_sched_reset(G->cc.sched);
        if (!ggml_backend_sched_alloc_graph(G->cc.sched, gf)) {
            throw std::runtime_error("cannot allocate the gradient graph");
        }
        std::vector<int32_t> pos(n);
        for (int i = 0; i < n; i++) pos[i] = i;
        ggml_backend_tensor_set(g.pos, pos.data(), 0, n * sizeof(int32_t));
        ggml_backend_tensor_set(inp, tokens, 0, n * sizeof(int32_t));
        const std::vector<float> mask = causal_mask(hp, n, false);
        ggml_backend_tensor_set(g.mask_full, mask.data(), 0, mask.size() * sizeof(float));
        if (g.mask_swa != g.mask_full) {
            const std::vector<float> swa = causal_mask(hp, n, true);
            ggml_backend_tensor_set(g.mask_swa, swa.data(), 0, swa.size() * sizeof(float));
        }
        {
            std::vector<float> onehot(size_t(n_vocab) * n_loss, 0.0f);
            for (int i = 0; i < n_loss; i++) onehot[size_t(i) * n_vocab + tokens[loss_from + i + 1]] = 1.0f;
            ggml_backend_tensor_set(labels, onehot.data(), 0, onehot.size() * sizeof(float));
        }
        const size_t plane = size_t(n) * d;
        for (size_t k = 0; k < deltas.size(); k++) {
            if (delta) {
                ggml_backend_tensor_set(deltas[k], delta + k * plane, 0, plane * sizeof(float));
            } else {
                ggml_backend_tensor_memset(deltas[k], 0, 0, plane * sizeof(float));
            }
        }
        if (loss_grad) {
            const float one = 1.0f;
            ggml_backend_tensor_set(loss_grad, &one, 0, sizeof(float));
        }

        const ggml_status st = ggml_backend_sched_graph_compute(G->cc.sched, gf);
        if (st != GGML_STATUS_SUCCESS) {
            throw std::runtime_error("graph compute failed: " + std::string(ggml_status_to_string(st)));
        }
        float l = 0.0f;
        ggml_backend_tensor_get(loss, &l, 0, sizeof(float));
        *loss_out = l;
        for (size_t k = 0; k < hidden.size(); k++) {
            if (hidden_out) ggml_backend_tensor_get(hidden[k], hidden_out + k * plane, 0, plane * sizeof(float));
            if (grad_out) ggml_backend_tensor_get(grads[k], grad_out + k * plane, 0, plane * sizeof(float));
        }
        ggml_free(ctx);
        return 0;
    } catch (const std::exception & ex) {
        sdtp_set_err(err, n_err, ex.what());
    }
    if (ctx) ggml_free(ctx);
    return -1;
}

} // extern "C"
