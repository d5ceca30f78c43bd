package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// modeOracle prunes a --quality window's context by the attention that
// its continuation pays: the ideal question. No scorer can read a
// continuation before it is given, so this is a reference, not a method:
// how close to dense perplexity knowing the query perfectly gets at a
// schedule (docs/SCHEDULES.md, "What knowing the continuation buys").
const modeOracle = "oracle"

// oracle returns mode oracle's scorer for one window. A prefill of
// ctx+cont at v's schedule, with attention-acc asking with cont's tokens
// (the default head pooling and layer normalisation, every layer), records
// each stage's scores by position; the scorer returned replays them in the
// prefill of ctx alone. Layers before the first cut run over every token
// in both prefills, so the first stage's scores are exactly those cont
// pays ctx; at later stages the two prefills may keep different tokens,
// and a token the recording prefill had already dropped ranks last.
func (b *bench) oracle(v variant, ctx, cont []int32) (sdtp.Scorer, error) {
	ask := predictor.DefaultAttentionAcc()
	ask.Window = len(cont)
	all := append(slices.Clone(ctx), cont...)
	rec := &replay{record: ask.ForPrefill(len(all))}
	if _, err := sdtp.Prefill(context.Background(), b.engine, rec, v.sched, all, 512); err != nil {
		return nil, fmt.Errorf("oracle: scoring the context with its continuation: %w", err)
	}
	rec.record = nil
	return rec, nil
}

// replay records a scorer's scores by stage and position while record is
// set, then gives them back by position.
type replay struct {
	record sdtp.Scorer
	stages []map[int32]float32
}

func (r *replay) Needs() sdtp.Needs {
	if r.record != nil {
		return r.record.Needs()
	}
	return sdtp.Needs{}
}

func (r *replay) Score(in sdtp.ScoreInput) ([]float32, error) {
	if r.record != nil {
		scores, err := r.record.Score(in)
		if err != nil {
			return nil, err
		}
		byPos := make(map[int32]float32, len(scores))
		for i, p := range in.Positions {
			byPos[p] = scores[i]
		}
		r.stages = append(r.stages, byPos)
		return scores, nil
	}
	if in.Stage >= len(r.stages) {
		return nil, fmt.Errorf("oracle: stage %d was not recorded (%d stages)", in.Stage, len(r.stages))
	}
	rec := r.stages[in.Stage]
	low := float32(0)
	for _, s := range rec {
		low = min(low, s)
	}
	out := make([]float32, len(in.Positions))
	for i, p := range in.Positions {
		s, ok := rec[p]
		if !ok {
			s = low - 1 // dropped by the recording prefill: below every recorded score
		}
		out[i] = s
	}
	return out, nil
}
