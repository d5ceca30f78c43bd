package sdtp

import "fmt"

// Span kernels used by retrieval-safe pruning methods: SnapKV (arXiv
// 2404.14469) pools its observation-window scores over 7 neighbouring
// tokens before choosing, SpecPrefill (arXiv 2502.02789) over 13.
const (
	SnapKVSpanKernel      = 7
	SpecPrefillSpanKernel = 13
)

// ValidateSpanKernel accepts 0 (no pooling) or an odd kernel: a token and
// (kernel−1)/2 live neighbours on each side.
func ValidateSpanKernel(kernel int) error {
	if kernel < 0 || (kernel > 0 && kernel%2 == 0) {
		return fmt.Errorf("sdtp: span kernel %d must be 0 (off) or odd (a token and as many live neighbours on each side)", kernel)
	}
	return nil
}

// PoolSpans max-pools scores over neighbourhoods of live tokens before
// Select, so that a multi-token fact (a number, a name) whose best token
// scores high survives whole instead of losing pieces (SnapKV: max pooling
// over 7 tokens; SpecPrefill: 13). Each unprotected token gets
// the highest score among the unprotected live tokens at most
// (kernel−1)/2 places before or after it in position order (live tokens,
// not original positions: at later stages a neighbour may lie further
// away). Protected tokens keep their own scores and lend none: they are
// kept anyway, and attention sinks would otherwise pull their neighbours
// in. positions and scores are parallel, in increasing position order;
// the result is new. kernel 0 or 1 returns scores unchanged.
func PoolSpans(positions []int32, scores []float32, nPrompt, kernel int) []float32 {
	if kernel <= 1 {
		return scores
	}
	half := kernel / 2
	out := make([]float32, len(scores))
	for i := range scores {
		out[i] = scores[i]
		if Protected(int(positions[i]), nPrompt) {
			continue
		}
		for j := max(0, i-half); j <= min(len(scores)-1, i+half); j++ {
			if !Protected(int(positions[j]), nPrompt) && scores[j] > out[i] {
				out[i] = scores[j]
			}
		}
	}
	return out
}
