package train

import (
	"fmt"
	"math"

	"github.com/go-sdtp/sdtp/sdtp"
)

// Target names the importance a predictor at stage s learns from the
// saliencies sal_s of a sequence:
//   - TargetAbs: |sal_s|, how much the token's stream moves the loss
//     either way;
//   - TargetSigned: −sal_s, the first-order rise of the loss if the
//     token's stream were removed (x·∂L/∂x ≈ L(x) − L(0));
//   - TargetCumulative: Σ over stages s' >= s of |sal_s'| / Σ_tokens |sal_s'|.
//     A token pruned at stage s is gone from every later layer, so what it
//     would have contributed there counts too; the sum also averages out
//     much of one layer's noise.
type Target string

const (
	TargetAbs        Target = "abs"
	TargetSigned     Target = "signed"
	TargetCumulative Target = "cumulative"
)

// importance returns the target of every position of r at stage s.
func (t Target) importance(r Record, s int) []float32 {
	out := make([]float32, len(r.Tokens))
	switch t {
	case TargetSigned:
		for i, v := range r.Saliency[s] {
			out[i] = -v
		}
	case TargetAbs:
		for i, v := range r.Saliency[s] {
			out[i] = float32(math.Abs(float64(v)))
		}
	case TargetCumulative:
		for _, sal := range r.Saliency[s:] {
			var total float64
			for _, v := range sal {
				total += math.Abs(float64(v))
			}
			for i, v := range sal {
				out[i] += float32(math.Abs(float64(v)) / max(total, 1e-30))
			}
		}
	}
	return out
}

// ParseTarget checks a --target value.
func ParseTarget(s string) (Target, error) {
	switch t := Target(s); t {
	case TargetAbs, TargetSigned, TargetCumulative:
		return t, nil
	}
	return "", fmt.Errorf("target %q: want abs, signed or cumulative", s)
}

// Example is one sequence at one stage: the predictor inputs of the tokens
// that compete for survival (not in the protected head or tail) — each
// token's residual stream, followed by its sdtp.Context features when the
// predictor reads them — and their importance.
type Example struct {
	Input      []float32 // [m][d] or [m][d + len(sdtp.ContextFeatures)]
	Importance []float32 // [m]
}

// Examples collects stage s of every record, from the dense streams or the
// pruned ones (see Record), with or without context features.
func Examples(recs []Record, s, d int, pruned, context bool, target Target) []Example {
	k := len(sdtp.ContextFeatures)
	var out []Example
	for _, r := range recs {
		n := len(r.Tokens)
		var hidden []float32
		var pos []int32
		if pruned {
			hidden, pos = fromBF16(r.PrunedHidden[s]), r.PrunedPos[s]
		} else {
			hidden, pos = fromBF16(r.Hidden[s]), make([]int32, n)
			for i := range pos {
				pos[i] = int32(i)
			}
		}
		imp := target.importance(r, s)
		var feats []float32
		if context {
			feats = sdtp.Context(r.Tokens, pos)
		}
		var ex Example
		for i, p := range pos {
			if sdtp.Protected(int(p), n) {
				continue
			}
			ex.Input = append(ex.Input, hidden[i*d:(i+1)*d]...)
			if context {
				ex.Input = append(ex.Input, feats[i*k:(i+1)*k]...)
			}
			ex.Importance = append(ex.Importance, imp[p])
		}
		if len(ex.Importance) >= 2 {
			out = append(out, ex)
		}
	}
	return out
}
