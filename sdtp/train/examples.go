package train

import (
	"fmt"
	"math"
	"slices"

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
//     much of one layer's noise;
//   - TargetGradNorm: ‖∂L/∂x‖, how strongly the loss depends on the
//     stream in any direction;
//   - TargetAlignment: |cos(x, ∂L/∂x)| = |sal_s| / (‖x‖·‖∂L/∂x‖), the
//     rest of |sal_s|.
//
// The last two are the factors of |sal_s| and are there to study it
// (Decompose, docs/TRAINING.md): predictors learn the first far better.
type Target string

const (
	TargetAbs        Target = "abs"
	TargetSigned     Target = "signed"
	TargetCumulative Target = "cumulative"
	TargetGradNorm   Target = "grad-norm"
	TargetAlignment  Target = "alignment"
)

// Targets lists every target, the default first.
var Targets = []Target{TargetAbs, TargetCumulative, TargetSigned, TargetGradNorm, TargetAlignment}

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
	case TargetGradNorm:
		copy(out, r.GradNorm[s])
	case TargetAlignment:
		xNorm := rowNorms(fromBF16(r.Hidden[s]), len(r.Hidden[s])/len(r.Tokens))
		for i, v := range r.Saliency[s] {
			out[i] = float32(math.Abs(float64(v)) / max(float64(xNorm[i])*float64(r.GradNorm[s][i]), 1e-30))
		}
	}
	return out
}

// ParseTarget checks a --target value.
func ParseTarget(s string) (Target, error) {
	if t := Target(s); slices.Contains(Targets, t) {
		return t, nil
	}
	return "", fmt.Errorf("target %q: want one of %v", s, Targets)
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

// Decomposition is how the factors of |sal| rank the tokens of one stage
// like |sal| does: the mean per-sequence Spearman over the competing
// tokens of |sal| with ‖∂L/∂x‖ and with |cos(x, ∂L/∂x)|, and the mean
// |cos| itself.
type Decomposition struct {
	WithGradNorm  float64 `json:"spearman_with_grad_norm"`
	WithAlignment float64 `json:"spearman_with_alignment"`
	MeanAlignment float64 `json:"mean_alignment"`
}

// Decompose splits stage s's |sal| of the dense streams of recs.
func Decompose(recs []Record, s int) Decomposition {
	var out Decomposition
	var seqs int
	for _, r := range recs {
		var abs, norm, align []float32
		all := [][]float32{TargetAbs.importance(r, s), TargetGradNorm.importance(r, s), TargetAlignment.importance(r, s)}
		for i := range r.Tokens {
			if !sdtp.Protected(i, len(r.Tokens)) {
				abs, norm, align = append(abs, all[0][i]), append(norm, all[1][i]), append(align, all[2][i])
			}
		}
		if len(abs) < 2 {
			continue
		}
		seqs++
		out.WithGradNorm += Spearman(abs, norm)
		out.WithAlignment += Spearman(abs, align)
		var mean float64
		for _, a := range align {
			mean += float64(a) / float64(len(align))
		}
		out.MeanAlignment += mean
	}
	if seqs > 0 {
		out.WithGradNorm /= float64(seqs)
		out.WithAlignment /= float64(seqs)
		out.MeanAlignment /= float64(seqs)
	}
	return out
}
