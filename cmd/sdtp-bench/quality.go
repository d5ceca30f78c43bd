package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/sdtp"
	"gonum.org/v1/gonum/stat"
)

// quality measures what pruning costs in prediction: for seeded windows of
// the text, each mode prefills --context-tokens (pruning them), then the
// next --continuation-tokens are fed teacher-forced as ordinary tokens,
// under the variant's KV policy. Dense (the staged engine without pruning
// or KV policy, identical to llama.cpp) is the reference for KL divergence
// and top-1 agreement; each mode's perplexity ratio to dense gets a 95%
// interval over the windows (numeric.PerplexityRatio).
func (b *bench) quality(all []int32) ([]report.Row, error) {
	ctxN, contN := b.cfg.contextTokens, b.cfg.contTokens
	body := all[1:] // without the BOS the tokenizer added
	if len(body) < ctxN+contN {
		return nil, fmt.Errorf("--text has %d tokens, quality needs %d", len(body), ctxN+contN)
	}
	type acc struct {
		kl      float64
		top1, n int
		kvPeak  int64
		window  []float64 // mean NLL per token of each window
	}
	stats := make([]acc, len(b.vars))
	var denseNLL []float64 // the reference's mean NLL per token, per window
	rng := rand.New(rand.NewPCG(b.cfg.seed, 7))
	bos := all[0]
	for s := range b.cfg.samples {
		start := rng.IntN(len(body) - (ctxN + contN) + 2)
		window := append([]int32{bos}, body[start:start+ctxN+contN-1]...)
		ctx, cont := window[:ctxN], window[ctxN:]
		ref, refKV, err := b.continuation(variant{mode: "dense", kv: sdtp.KVNone}, ctx, cont)
		if err != nil {
			return nil, err
		}
		denseNLL = append(denseNLL, meanNLL(ref, cont))
		for vi, v := range b.vars {
			if v.mode == "llamacpp" {
				continue // identical to dense, the reference
			}
			lp, kvPeak := ref, refKV
			if v.mode != "dense" || v.kv != sdtp.KVNone {
				if lp, kvPeak, err = b.continuation(v, ctx, cont); err != nil {
					return nil, err
				}
			}
			a := &stats[vi]
			a.kvPeak = max(a.kvPeak, kvPeak)
			a.window = append(a.window, meanNLL(lp, cont))
			for i := range cont {
				a.kl += kl(ref[i], lp[i])
				if numeric.Argmax(ref[i]) == numeric.Argmax(lp[i]) {
					a.top1++
				}
				a.n++
			}
		}
		fmt.Fprintf(b.log, "quality: sample %d/%d done\n", s+1, b.cfg.samples)
	}
	var rows []report.Row
	for vi, v := range b.vars {
		a := stats[vi]
		if v.mode == "llamacpp" {
			continue
		}
		row := v.row(ctxN)
		row.Samples = b.cfg.samples
		// Every window has contN tokens: the mean of the windows' means is
		// the mean over all tokens.
		row.PPL, row.KLVsDense, row.Top1VsDense = math.Exp(stat.Mean(a.window, nil)), a.kl/float64(a.n), float64(a.top1)/float64(a.n)
		row.KVBytes = a.kvPeak
		row.WindowNLL = a.window
		if (v.mode != "dense" || v.kv != sdtp.KVNone) && len(a.window) > 1 {
			var err error
			if _, row.PPLRatioLow, row.PPLRatioHigh, err = numeric.PerplexityRatio(denseNLL, a.window); err != nil {
				return nil, err
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// continuation returns, for each continuation token, the log-probabilities
// the model assigns to it after a prefill of ctx in this variant: row i
// predicts cont[i]; and the most KV bytes the caches held meanwhile. Under
// a KV policy the tokens go one at a time, each followed by the policy's
// eviction, so no layer ever holds more than the budget between steps.
func (b *bench) continuation(v variant, ctx, cont []int32) ([][]float32, int64, error) {
	sc := b.scorer(v.mode)
	if v.mode == modeOracle {
		var err error
		if sc, err = b.oracle(v, ctx, cont); err != nil {
			return nil, 0, err
		}
	}
	pre, kv, err := b.prefill(v, sc, ctx)
	if err != nil {
		return nil, 0, err
	}
	peak := b.engine.KVBytes()
	rows := [][]float32{logSoftmax(pre.Logits)}
	nv := b.model.NVocab()
	step := 32
	if kv.Limit() > 0 {
		step = 1
	}
	for start := 0; start < len(cont)-1; start += step {
		end := min(start+step, len(cont)-1)
		pos := make([]int32, end-start)
		for i := range pos {
			pos[i] = int32(len(ctx) + start + i)
		}
		out, err := b.engine.Run(bridge.RunInput{First: 0, Last: b.engine.NLayer(), Tokens: cont[start:end], Positions: pos,
			WantLogits: true, AllLogits: true})
		if err != nil {
			return nil, 0, err
		}
		if err := kv.Enforce(); err != nil {
			return nil, 0, err
		}
		peak = max(peak, b.engine.KVBytes())
		for r := range end - start {
			rows = append(rows, logSoftmax(out.Logits[r*nv:(r+1)*nv]))
		}
	}
	return rows, peak, nil
}

// meanNLL is the mean negative log-likelihood per token (nats) of cont
// under the log-probabilities lp (row i predicts cont[i]).
func meanNLL(lp [][]float32, cont []int32) float64 {
	nll := 0.0
	for i, next := range cont {
		nll -= float64(lp[i][next])
	}
	return nll / float64(len(cont))
}

func logSoftmax(logits []float32) []float32 {
	lse := numeric.LogSumExp(logits)
	out := make([]float32, len(logits))
	for i, v := range logits {
		out[i] = float32(float64(v) - lse)
	}
	return out
}

// kl is KL(p ‖ q) for log-probabilities.
func kl(logp, logq []float32) float64 {
	d := 0.0
	for i, lp := range logp {
		if p := math.Exp(float64(lp)); p > 0 {
			d += p * (float64(lp) - float64(logq[i]))
		}
	}
	return d
}
