package numeric

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// PerplexityRatio compares a mode's perplexity with a reference's over the
// same windows of text: refNLL[i] and modeNLL[i] are the mean negative
// log-likelihoods per token (nats) of window i, every window the same
// number of tokens. ratio is ppl(mode) / ppl(ref) = exp(mean_i(mode_i −
// ref_i)), exactly the ratio of the pooled perplexities; lo and hi are its
// 95% interval from Student's t over the per-window differences (paired,
// windows taken as independent). One window gives no interval: lo and hi
// are then NaN. Errors on no windows or unequal lengths.
func PerplexityRatio(refNLL, modeNLL []float64) (ratio, lo, hi float64, err error) {
	n := len(refNLL)
	if n == 0 || n != len(modeNLL) {
		return 0, 0, 0, fmt.Errorf("numeric: perplexity ratio over %d and %d windows", n, len(modeNLL))
	}
	diff := make([]float64, n)
	for i := range diff {
		diff[i] = modeNLL[i] - refNLL[i]
	}
	mean, sd := stat.MeanStdDev(diff, nil)
	if n == 1 {
		return math.Exp(mean), math.NaN(), math.NaN(), nil
	}
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975)
	half := t * sd / math.Sqrt(float64(n))
	return math.Exp(mean), math.Exp(mean - half), math.Exp(mean + half), nil
}
