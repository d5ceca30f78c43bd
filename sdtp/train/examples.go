package train

import (
	"fmt"
	"math"

	"github.com/go-sdtp/sdtp/sdtp"
)

// Target names the importance a predictor learns from saliency sal:
//   - TargetAbs: |sal|, how much the token's stream moves the loss either way;
//   - TargetSigned: −sal, the first-order rise of the loss if the token's
//     stream were removed (x·∂L/∂x ≈ L(x) − L(0)).
type Target string

const (
	TargetAbs    Target = "abs"
	TargetSigned Target = "signed"
)

func (t Target) importance(sal float32) float32 {
	if t == TargetSigned {
		return -sal
	}
	return float32(math.Abs(float64(sal)))
}

// ParseTarget checks a --target value.
func ParseTarget(s string) (Target, error) {
	switch t := Target(s); t {
	case TargetAbs, TargetSigned:
		return t, nil
	}
	return "", fmt.Errorf("target %q: want abs or signed", s)
}

// Example is one sequence at one stage: the residual streams of the tokens
// that compete for survival (not in the protected head or tail) and their
// importance.
type Example struct {
	Hidden     []float32 // [m][d]
	Importance []float32 // [m]
}

// Examples collects stage s of every record, from the dense streams or the
// pruned ones (see Record).
func Examples(recs []Record, s, d int, pruned bool, target Target) []Example {
	var out []Example
	for _, r := range recs {
		n := len(r.Tokens)
		tail := int(math.Ceil(sdtp.TailKeepFrac * float64(n)))
		hidden := fromBF16(r.Hidden[s])
		pos := make([]int32, n)
		for i := range pos {
			pos[i] = int32(i)
		}
		if pruned {
			hidden, pos = fromBF16(r.PrunedHidden[s]), r.PrunedPos[s]
		}
		var ex Example
		for i, p := range pos {
			if int(p) < sdtp.HeadKeep || int(p) >= n-tail {
				continue
			}
			ex.Hidden = append(ex.Hidden, hidden[i*d:(i+1)*d]...)
			ex.Importance = append(ex.Importance, target.importance(r.Saliency[s][p]))
		}
		if len(ex.Importance) >= 2 {
			out = append(out, ex)
		}
	}
	return out
}
