package testmodel

import (
	"fmt"
	"math/rand/v2"

	"github.com/go-sdtp/sdtp/gguf"
)

// WriteLora writes a random LoRA adapter for the model described by base:
// rank-r factors on every layer's attn_q and ffn_up. B is scaled by bStd;
// bStd = 0 gives an adapter that leaves the model unchanged, which tests use
// as a control.
func WriteLora(path string, base Config, rank int, bStd float64, seed uint64) error {
	if err := base.validate(); err != nil {
		return err
	}
	if rank <= 0 {
		return fmt.Errorf("testmodel: LoRA rank %d must be positive", rank)
	}
	w := gguf.NewWriter()
	w.Set("general.type", gguf.String("adapter"))
	w.Set("general.architecture", gguf.String(base.Arch))
	w.Set("adapter.type", gguf.String("lora"))
	w.Set("adapter.lora.alpha", gguf.Float32(float32(rank)))

	g := &gen{w: w, rng: rand.New(rand.NewPCG(seed, 0x4c6f_5241)), std: 0.2}
	r := uint64(rank)
	nEmbd, nFF, nQ := uint64(base.NEmbd), uint64(base.NFF), uint64(base.HeadDim*base.NHead)
	for il := 0; il < base.NLayer; il++ {
		for _, t := range []struct {
			name    string
			in, out uint64
		}{{"attn_q", nEmbd, nQ}, {"ffn_up", nEmbd, nFF}} {
			// llama.cpp wants A as {in, r} and B as {r, out}.
			name := fmt.Sprintf("blk.%d.%s.weight", il, t.name)
			g.std = 0.2
			g.matrix(name+".lora_a", t.in, r)
			g.std = bStd
			g.matrix(name+".lora_b", r, t.out)
		}
	}
	if g.err != nil {
		return g.err
	}
	return w.WriteFile(path)
}
