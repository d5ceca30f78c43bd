package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/sdtp"
)

// promptTokens tokenizes --text, or lets the model write its own text.
func (b *bench) promptTokens(n int) ([]int32, error) {
	if b.cfg.text != "" {
		toks, err := b.textTokens()
		if err != nil {
			return nil, err
		}
		if len(toks) < n {
			return nil, fmt.Errorf("%s has %d tokens, need %d", b.cfg.text, len(toks), n)
		}
		return toks[:n], nil
	}
	fmt.Fprintf(b.log, "generating a %d-token prompt with the model (use --text to skip)\n", n)
	smp, err := bridge.NewSampler(b.model, bridge.SamplerParams{Seed: 1, Temperature: 1, TopK: 40, TopP: 0.95, RepeatLastN: 64, RepeatPenalty: 1.1})
	if err != nil {
		return nil, err
	}
	defer smp.Free()
	toks, err := b.model.Tokenize("Chapter 1\n\n", true, false)
	if err != nil {
		return nil, err
	}
	b.ctx.Clear()
	if err := b.ctx.Decode(toks, 0, bridge.OutputLast); err != nil {
		return nil, err
	}
	for len(toks) < n {
		tok, err := smp.Sample(b.ctx, -1)
		if err != nil {
			return nil, err
		}
		if b.model.IsEOG(tok) {
			tok = toks[len(toks)-1] // keep going: a benchmark prompt needs no ending
		}
		toks = append(toks, tok)
		if err := b.ctx.Decode([]int32{tok}, len(toks)-1, bridge.OutputLast); err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// compare runs every variant --repeat times (plus a warm-up), interleaved.
func (b *bench) compare(prompt []int32) ([]report.Row, error) {
	samples := make([][]sample, len(b.vars))
	ref := -1 // the llamacpp variant
	for r := 0; r <= b.cfg.repeat; r++ {
		for i, v := range b.vars {
			if v.mode == "llamacpp" {
				ref = i
			}
			s, err := b.runVariant(v, prompt)
			if err != nil {
				return nil, fmt.Errorf("%v at %d tokens: %w", v, len(prompt), err)
			}
			if r > 0 { // run 0 warms caches and pages in the weights
				samples[i] = append(samples[i], s)
			}
		}
		fmt.Fprintf(b.log, "%d tokens: run %d/%d done\n", len(prompt), r, b.cfg.repeat)
	}
	denseFLOPs := sdtp.DenseFLOPs(b.shape, len(prompt))
	var rows []report.Row
	for i, v := range b.vars {
		ss := samples[i]
		last := ss[len(ss)-1]
		prefill := median(ss, func(s sample) time.Duration { return s.prefill })
		decode := median(ss, func(s sample) time.Duration { return s.decode })
		predictorTime := median(ss, func(s sample) time.Duration { return s.predictor })
		row := v.row(len(prompt))
		row.PredictorMS = float64(predictorTime.Microseconds()) / 1000
		row.PrefillMS = float64(prefill.Microseconds()) / 1000
		row.DecodeTokS = float64(b.cfg.decodeTokens) / decode.Seconds()
		row.KeptTokensPerLayer, row.KVBytes = last.perLyr, last.kv
		if last.live != nil {
			row.FLOPsPrefill = sdtp.PrefillFLOPs(b.shape, last.live)
		} else {
			row.FLOPsPrefill = denseFLOPs
		}
		row.FLOPRatioVsDense = denseFLOPs / row.FLOPsPrefill
		if ref >= 0 {
			refLast := samples[ref][len(samples[ref])-1]
			row.Top1VsLlamaCpp = agreement(refLast.cont, last.cont)
			row.MaxAbsLogitDiff = numeric.MaxAbsDiff(refLast.logits, last.logits)
			row.SpeedupVsLlamaCpp = float64(median(samples[ref], func(s sample) time.Duration { return s.prefill })) / float64(prefill)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (b *bench) runVariant(v variant, prompt []int32) (sample, error) {
	if v.mode == "llamacpp" {
		return b.runLlamaCpp(prompt)
	}
	sc := b.scorer(v.mode)
	var s sample
	start := time.Now()
	pre, kv, err := b.prefill(v, sc, prompt)
	s.prefill = time.Since(start)
	if err != nil {
		return s, err
	}
	if t, ok := sc.(*timed); ok {
		s.predictor = t.spent
	} else if sc == b.heads {
		if s.predictor, err = b.headCost(v.sched, prompt); err != nil {
			return s, err
		}
	}
	s.logits, s.perLyr, s.kv = pre.Logits, pre.KeptPerLayer, b.engine.KVBytes()
	s.live = sdtp.LivePerLayer(v.sched, b.engine.NLayer(), pre.LivePositions)
	logits := pre.Logits
	start = time.Now()
	for i := range b.cfg.decodeTokens {
		tok := int32(numeric.Argmax(logits))
		s.cont = append(s.cont, tok)
		out, err := b.engine.Run(bridge.RunInput{First: 0, Last: b.engine.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(len(prompt) + i)}, WantLogits: true})
		if err == nil {
			err = kv.Enforce()
		}
		if err != nil {
			return s, err
		}
		logits = out.Logits
	}
	s.decode = time.Since(start)
	return s, nil
}

func (b *bench) runLlamaCpp(prompt []int32) (sample, error) {
	var s sample
	b.ctx.Clear()
	start := time.Now()
	if err := b.ctx.Decode(prompt, 0, bridge.OutputLast); err != nil {
		return s, err
	}
	s.prefill = time.Since(start)
	logits, err := b.ctx.Logits(-1)
	if err != nil {
		return s, err
	}
	s.logits = logits
	for range b.engine.NLayer() {
		s.perLyr = append(s.perLyr, len(prompt))
	}
	// The same cells as our dense cache: n tokens in every layer.
	layers, _, _ := b.engine.Shape()
	for _, L := range layers {
		s.kv += int64(len(prompt)) * int64(2*L.NHeadKV*L.HeadDim) * 2
	}
	start = time.Now()
	for i := range b.cfg.decodeTokens {
		tok := int32(numeric.Argmax(logits))
		s.cont = append(s.cont, tok)
		if err := b.ctx.Decode([]int32{tok}, len(prompt)+i, bridge.OutputLast); err != nil {
			return s, err
		}
		if logits, err = b.ctx.Logits(-1); err != nil {
			return s, err
		}
	}
	s.decode = time.Since(start)
	return s, nil
}

func median(ss []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func agreement(a, b []int32) float64 {
	same := 0
	for i := range a {
		if i < len(b) && a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}
