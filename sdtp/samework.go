package sdtp

import (
	"errors"
	"fmt"
	"math"
)

// Same-work schedules (issue 16): other placements of pruning at the
// prefill cost of a reference schedule, to compare by the answers they
// keep (docs/SCHEDULES.md).

// Work is the share of a dense prefill's linear-layer work that s leaves
// on an nLayer-layer model: the mean over layers of the fraction of
// tokens alive there (a stage at layer L prunes before layer L runs),
// ignoring the protected head and tail. The default schedule at keep 0.9
// leaves 0.641 on Gemma 3 270M's 18 layers. Attention, which shrinks with
// the square of the live tokens, is not counted: at the prompt lengths
// measured here the linear layers are most of the work.
func (s Schedule) Work(nLayer int) float64 {
	var sum float64
	alive, stage := 1.0, 0
	for l := range nLayer {
		for stage < len(s.Layers) && s.Layers[stage] <= l {
			alive *= s.KeepRatios[stage]
			stage++
		}
		sum += alive
	}
	return sum / float64(nLayer)
}

// SameWork returns the schedule over layers with ref's Work on nLayer
// layers (to 1e-6) whose keep ratio at stage i of k is r^w_i, with
// w_i = 1 + tilt·(2i/(k−1) − 1): tilt 0 keeps the same ratio at every
// stage, tilt 0.5 prunes the last stage three times as hard as the first
// (in log keep), so pruning moves to later layers at the same cost. Start
// later by giving fewer, later layers. Errors: tilt outside [0, 1),
// invalid layers, or layers that start too late to reach the work even by
// pruning everything.
func SameWork(ref Schedule, nLayer int, layers []int, tilt float64) (Schedule, error) {
	if !(tilt >= 0 && tilt < 1) {
		return Schedule{}, fmt.Errorf("sdtp: tilt %v must be in [0, 1)", tilt)
	}
	if len(layers) == 0 {
		return Schedule{}, errors.New("sdtp: a same-work schedule needs pruning layers")
	}
	target := ref.Work(nLayer)
	at := func(r float64) Schedule {
		s := Schedule{Layers: layers, KeepRatios: make([]float64, len(layers))}.WithSpans(ref.Spans())
		for i := range layers {
			w := 1.0
			if k := len(layers); k > 1 {
				w += tilt * (2*float64(i)/float64(k-1) - 1)
			}
			s.KeepRatios[i] = math.Pow(r, w)
		}
		return s
	}
	if err := at(1).Validate(nLayer); err != nil {
		return Schedule{}, err
	}
	if floor := float64(layers[0]) / float64(nLayer); floor >= target {
		return Schedule{}, fmt.Errorf("sdtp: pruning from layer %d leaves at least %.3f of the work; the reference leaves %.3f", layers[0], floor, target)
	}
	lo, hi := 0.0, 1.0 // Work rises with r
	for hi-lo > 1e-12 {
		if mid := (lo + hi) / 2; at(mid).Work(nLayer) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return at(hi), nil
}
