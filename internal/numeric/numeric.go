// Package numeric has the small vector helpers that benchmarks and tests
// share for comparing logits.
package numeric

import "math"

// Argmax is the index of the largest value (the first one on ties).
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// MaxAbsDiff is max |a[i] − b[i]| over the common length; NaN if any
// difference is NaN.
func MaxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range min(len(a), len(b)) {
		diff := math.Abs(float64(a[i] - b[i]))
		if math.IsNaN(diff) {
			return math.NaN()
		}
		d = math.Max(d, diff)
	}
	return d
}

// LogSumExp is log Σ exp(v_i), computed in float64 from the largest value
// so that no term overflows: the normaliser of a log-softmax, so the
// cross-entropy of a target t is LogSumExp(logits) − logits[t].
func LogSumExp(v []float32) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, float64(x))
	}
	var sum float64
	for _, x := range v {
		sum += math.Exp(float64(x) - m)
	}
	return m + math.Log(sum)
}
