package numeric

import (
	"fmt"
	"math"
)

// z95 is the standard normal quantile for a two-sided 95% interval.
const z95 = 1.959963984540054

// Wilson returns the 95% Wilson score interval of a binomial proportion:
// correct successes out of n trials (E. B. Wilson, "Probable inference, the
// law of succession, and statistical inference", JASA 1927). Unlike the
// normal approximation it stays inside [0, 1] and is sensible at 0/n and
// n/n. With n = 0 nothing is known and the interval is [0, 1].
func Wilson(correct, n int) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	p := float64(correct) / float64(n)
	nf := float64(n)
	z2 := z95 * z95
	den := 1 + z2/nf
	centre := (p + z2/(2*nf)) / den
	half := z95 * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	return max(0, centre-half), min(1, centre+half)
}

// Paired compares two modes on the same prompts, prompt by prompt: refOnly
// counts the prompts the reference (dense) answered right and the mode
// wrong, modeOnly the reverse. The other prompts agree. ref and mode must
// hold one verdict per prompt, in the same order.
func Paired(ref, mode []bool) (refOnly, modeOnly int, err error) {
	if len(ref) != len(mode) {
		return 0, 0, fmt.Errorf("numeric: paired comparison of %d and %d verdicts", len(ref), len(mode))
	}
	for i := range ref {
		switch {
		case ref[i] && !mode[i]:
			refOnly++
		case !ref[i] && mode[i]:
			modeOnly++
		}
	}
	return refOnly, modeOnly, nil
}
