package train

import (
	"sort"

	"gonum.org/v1/gonum/stat"
)

// Spearman is the rank correlation of a and b (average ranks for ties).
func Spearman(a, b []float32) float64 {
	return stat.Correlation(ranks(a), ranks(b), nil)
}

// Kendall is Kendall's τ-a of a and b.
func Kendall(a, b []float32) float64 {
	return stat.Kendall(widen(a), widen(b), nil)
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func ranks(v []float32) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return v[idx[i]] < v[idx[j]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		for k := i; k <= j; k++ {
			r[idx[k]] = float64(i+j) / 2
		}
		i = j + 1
	}
	return r
}

// rankNormalize maps v to [-1, 1] by rank: the MSE target, insensitive to
// saliency's heavy tails and to its scale, which varies between sequences.
func rankNormalize(v []float32) []float32 {
	r := ranks(v)
	out := make([]float32, len(v))
	if len(v) < 2 {
		return out
	}
	for i, x := range r {
		out[i] = float32(2*x/float64(len(v)-1) - 1)
	}
	return out
}
