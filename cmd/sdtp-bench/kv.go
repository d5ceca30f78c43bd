package main

import (
	"context"

	"github.com/go-sdtp/sdtp/sdtp"
)

// prefill runs the variant's staged prefill of prompt with scorer sc and
// then its KV policy's first eviction. The limiter it returns evicts after
// each later run (KVLimiter.Enforce).
func (b *bench) prefill(v variant, sc sdtp.Scorer, prompt []int32) (sdtp.PrefillResult, *sdtp.KVLimiter, error) {
	kv, err := sdtp.NewKVLimiter(b.engine, v.kv, v.kvBudget)
	if err != nil {
		return sdtp.PrefillResult{}, nil, err
	}
	kv.Start()
	pre, err := sdtp.Prefill(context.Background(), b.engine, sc, v.sched, prompt, 512)
	if err == nil {
		err = kv.Prefilled(len(prompt))
	}
	return pre, kv, err
}
