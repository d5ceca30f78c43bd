// Package sdtp is the pruning algorithm: where to prune (Schedule), which
// tokens survive (Select), and what it saves (accounting).
package sdtp

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Paper defaults (arXiv 2504.04514): 10 stages, keep 90% of the live tokens
// at each, so 0.9^10 ≈ 35% of the prompt reaches the last layers.
const (
	DefaultStages    = 10
	DefaultKeepRatio = 0.9
)

// Schedule says where pruning happens: before layer Layers[s], the live
// tokens are scored and a fraction KeepRatios[s] of them continue.
type Schedule struct {
	Layers     []int
	KeepRatios []float64
	// SpanKernel > 0 max-pools the scores over SpanKernel neighbouring
	// live tokens before each selection (PoolSpans), so that kept tokens
	// come in spans; 0 (the paper's schedule) selects single tokens.
	SpanKernel int
	// SpanTrail > 0 lends each token's score to that many following live
	// tokens as well (PoolSpans), so a fact's value survives with the
	// words that lead to it; 0 = off.
	SpanTrail int
	// SpanTrailSentence stops each trail at the end of its token's
	// sentence (PoolSpans, EndsSentence).
	SpanTrailSentence bool
	// SpanEcho > 1 gives the live tokens that end the same run of
	// SpanEcho tokens, a run the question (the prompt's last EchoWindow
	// tokens) repeats, the best score among them (ShareEchoes), so the copies of a phrase the question
	// asks about survive together; 0 = off.
	SpanEcho int
	// SpanEchoHops > 0 follows the facts that hold an echo through up to
	// that many further facts that share a name with them, and keeps each
	// fact of the chain whole (ChainEchoes); needs SpanEcho; 0 = off.
	SpanEchoHops int
	// SpanEchoFirst ranks the tokens that end an echo above all others
	// (EchoesFirst); needs SpanEcho.
	SpanEchoFirst bool
	// SpanSentences keeps or drops each sentence of at most
	// EchoHopMaxSentence tokens whole, at its best token's score
	// (PoolSentences), after the kernel and trail, in a prompt that asks
	// a question (AsksQuestion: a '?' among its last EchoWindow tokens);
	// other prompts are pruned token by token.
	SpanSentences bool
}

// DefaultSchedule scales the paper's 32-layer placement (layers 4, 7, …, 31)
// to nLayer layers: the first stage at round(nLayer/8), the last at the
// final layer, the rest evenly between. Models too shallow for 10 distinct
// layers get one stage per layer from the first. docs/SCHEDULES.md lists
// the result for common depths.
func DefaultSchedule(nLayer int, keepRatio float64) (Schedule, error) {
	if nLayer < 2 {
		return Schedule{}, fmt.Errorf("sdtp: a %d-layer model has no layer to prune before", nLayer)
	}
	first := max(1, int(math.Round(float64(nLayer)/8)))
	span := float64(nLayer - 1 - first)
	var s Schedule
	for i := range DefaultStages {
		l := first + int(math.Round(float64(i)*span/float64(DefaultStages-1)))
		if len(s.Layers) > 0 && l == s.Layers[len(s.Layers)-1] {
			continue
		}
		s.Layers = append(s.Layers, l)
		s.KeepRatios = append(s.KeepRatios, keepRatio)
	}
	return s, s.Validate(nLayer)
}

// Uniform prunes before each of layers, keeping the same ratio at every
// stage.
func Uniform(layers []int, keepRatio float64) Schedule {
	s := Schedule{Layers: layers}
	for range layers {
		s.KeepRatios = append(s.KeepRatios, keepRatio)
	}
	return s
}

// Subset is the schedule's stages at layers, in their order, with their
// keep ratios: learned predictors (one per stage layer) can prune at a
// subset of the layers they were trained for. A layer without a stage is
// an error naming the layers s covers.
func (s Schedule) Subset(layers []int) (Schedule, error) {
	var out Schedule
	for _, l := range layers {
		i := slices.Index(s.Layers, l)
		if i < 0 {
			return Schedule{}, fmt.Errorf("sdtp: pruning layer %d has no learned predictor: the predictors cover layers %v", l, s.Layers)
		}
		out.Layers = append(out.Layers, l)
		out.KeepRatios = append(out.KeepRatios, s.KeepRatios[i])
	}
	if len(out.Layers) == 0 {
		return Schedule{}, fmt.Errorf("sdtp: no pruning layers given (the predictors cover layers %v)", s.Layers)
	}
	for i := 1; i < len(out.Layers); i++ {
		if out.Layers[i] <= out.Layers[i-1] {
			return Schedule{}, fmt.Errorf("sdtp: pruning layers must be strictly increasing, got %d after %d", out.Layers[i], out.Layers[i-1])
		}
	}
	return out, nil
}

// Validate checks the schedule against a model depth.
func (s Schedule) Validate(nLayer int) error {
	if len(s.Layers) == 0 {
		return fmt.Errorf("sdtp: schedule has no stages")
	}
	if len(s.Layers) != len(s.KeepRatios) {
		return fmt.Errorf("sdtp: %d pruning layers but %d keep ratios", len(s.Layers), len(s.KeepRatios))
	}
	for i, l := range s.Layers {
		if l < 1 || l >= nLayer {
			return fmt.Errorf("sdtp: pruning layer %d out of range: must be in [1, %d] for a %d-layer model", l, nLayer-1, nLayer)
		}
		if i > 0 && l <= s.Layers[i-1] {
			return fmt.Errorf("sdtp: pruning layers must be strictly increasing, got %d after %d", l, s.Layers[i-1])
		}
		if r := s.KeepRatios[i]; !(r > 0 && r <= 1) {
			return fmt.Errorf("sdtp: keep ratio %v at layer %d must be in (0, 1]", r, l)
		}
	}
	if err := ValidateSpanKernel(s.SpanKernel); err != nil {
		return err
	}
	if err := ValidateSpanTrail(s.SpanTrail); err != nil {
		return err
	}
	if err := ValidateSpanEcho(s.SpanEcho); err != nil {
		return err
	}
	if s.SpanEchoFirst && s.SpanEcho < 2 {
		return fmt.Errorf("sdtp: span echo first needs a span echo (the question's runs); it is %d", s.SpanEcho)
	}
	return ValidateEchoHops(s.SpanEchoHops, s.SpanEcho)
}

// Cumulative is the fraction of (unprotected) tokens alive after each stage.
func (s Schedule) Cumulative() []float64 {
	out := make([]float64, len(s.KeepRatios))
	f := 1.0
	for i, r := range s.KeepRatios {
		f *= r
		out[i] = f
	}
	return out
}

// ParseSchedule reads "--prune-layers 4,7,10" and "--keep-ratio 0.9" (one
// ratio for every stage) or "0.9,0.8,…" (one per stage).
func ParseSchedule(layers, ratios string) (Schedule, error) {
	var s Schedule
	for _, f := range strings.Split(layers, ",") {
		l, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return s, fmt.Errorf("sdtp: pruning layer %q is not an integer", f)
		}
		s.Layers = append(s.Layers, l)
	}
	for _, f := range strings.Split(ratios, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return s, fmt.Errorf("sdtp: keep ratio %q is not a number", f)
		}
		s.KeepRatios = append(s.KeepRatios, r)
	}
	if len(s.KeepRatios) == 1 {
		for len(s.KeepRatios) < len(s.Layers) {
			s.KeepRatios = append(s.KeepRatios, s.KeepRatios[0])
		}
	}
	return s, nil
}
