package predictor

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/go-sdtp/sdtp/sdtp"
)

// MLP is the default SDTP prediction module, pi = W2·GELU(W1·x + b1) + b2,
// with two outputs per token (keep, drop). x is the token's hidden state
// (D values), followed, when Context > 0, by its sdtp.Context features.
// Weights are row-major: W1 [H][D+Context], W2 [2][H].
type MLP struct {
	D, H    int
	Context int // number of sdtp.ContextFeatures after the hidden state: 0 or all of them
	W1, B1  []float32
	W2, B2  []float32
}

// In is the width of the MLP's input.
func (m MLP) In() int { return m.D + m.Context }

// Validate checks the weight shapes, and that every weight is finite: a
// NaN or infinite weight makes every score NaN, which would only surface
// mid-prefill.
func (m MLP) Validate() error {
	if m.Context != 0 && m.Context != len(sdtp.ContextFeatures) {
		return fmt.Errorf("%w: predictor reads %d context features, this build computes %d (%v)",
			ErrMismatch, m.Context, len(sdtp.ContextFeatures), sdtp.ContextFeatures)
	}
	if m.D <= 0 || m.H <= 0 || len(m.W1) != m.H*m.In() || len(m.B1) != m.H || len(m.W2) != 2*m.H || len(m.B2) != 2 {
		return fmt.Errorf("predictor: MLP weight shapes do not match D=%d context=%d H=%d", m.D, m.Context, m.H)
	}
	for _, w := range []struct {
		name string
		v    []float32
	}{{"fc1.weight", m.W1}, {"fc1.bias", m.B1}, {"fc2.weight", m.W2}, {"fc2.bias", m.B2}} {
		if i := nonFinite(w.v); i >= 0 {
			return fmt.Errorf("predictor: %s[%d] is %v; weights must be finite", w.name, i, w.v[i])
		}
	}
	return nil
}

// nonFinite returns the index of the first NaN or infinite value, or -1.
func nonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// Scores computes keep − drop per token in Go: the reference for what the
// ONNX graph and the in-graph heads must produce. hidden is [n][D],
// context [n][Context] (nil when Context is 0).
func (m MLP) Scores(hidden, context []float32) []float32 {
	n := len(hidden) / m.D
	out := make([]float32, n)
	h := make([]float64, m.H)
	x := make([]float32, m.In())
	for t := range n {
		copy(x, hidden[t*m.D:(t+1)*m.D])
		copy(x[m.D:], context[t*m.Context:(t+1)*m.Context])
		for j := range m.H {
			s := float64(m.B1[j])
			for i, v := range x {
				s += float64(m.W1[j*m.In()+i]) * float64(v)
			}
			h[j] = gelu(s)
		}
		var keep, drop float64 = float64(m.B2[0]), float64(m.B2[1])
		for j, v := range h {
			keep += float64(m.W2[j]) * v
			drop += float64(m.W2[m.H+j]) * v
		}
		out[t] = float32(keep - drop)
	}
	return out
}

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// RandomMLP is a randomly initialised predictor: weights drawn with
// standard deviation 1/sqrt(fan-in), biases with 0.1. It is what SDTP runs
// before training (sdtp-convert init) and the fixture of tests.
func RandomMLP(d, h int, seed uint64) MLP {
	r := rand.New(rand.NewPCG(seed, 0x5d7b))
	normal := func(n int, std float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * std)
		}
		return v
	}
	return MLP{D: d, H: h, W1: normal(h*d, 1/math.Sqrt(float64(d))), B1: normal(h, 0.1),
		W2: normal(2*h, 1/math.Sqrt(float64(h))), B2: normal(2, 0.1)}
}
