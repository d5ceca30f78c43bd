package sdtp

import "fmt"

// Schedule presets: the paper's placement, and the retrieval schedule that
// keeps answers on long-prompt retrieval and QA (issue 16;
// docs/SCHEDULES.md, "The retrieval schedule").
const (
	SchedulePaper     = "paper"
	ScheduleRetrieval = "retrieval"
)

// Spans of the retrieval schedule: SnapKV's kernel of 7 around each
// token, and a trail of 32 following tokens, enough for a 7-digit number
// (7 tokens on Gemma 3) or a 32-hex-digit code after the words of its key.
const (
	RetrievalSpanKernel = SnapKVSpanKernel
	RetrievalSpanTrail  = 32
)

// RetrievalSchedule is ref's prefill work (Schedule.Work) spent from the
// middle of the model on: ref's stages at layers ≥ nLayer/2, one keep
// ratio for all of them solved by SameWork, with the retrieval spans. When
// those stages cannot reach ref's work (a shallow model, or a ref that
// prunes hard), it starts at the latest of ref's earlier layers that can.
// Question attention singles out a needle at middle layers, not at the
// first ones (GemFilter filters at layers 13–19 of 32, FastKV at a chosen
// middle layer), and a needle pruned early cannot come back. On Gemma 3
// 270M it turns 10 × 0.9 from layer 2 into 6 × 0.651 from layer 9 (0.641
// of the dense work either way). Errors: ref is invalid or has no stage at
// or after nLayer/2.
func RetrievalSchedule(ref Schedule, nLayer int) (Schedule, error) {
	if err := ref.Validate(nLayer); err != nil {
		return Schedule{}, err
	}
	first := len(ref.Layers)
	for first > 0 && ref.Layers[first-1] >= nLayer/2 {
		first--
	}
	if first == len(ref.Layers) {
		return Schedule{}, fmt.Errorf("sdtp: the retrieval schedule prunes from layer %d on, and the schedule's layers %v end before it", nLayer/2, ref.Layers)
	}
	ref.SpanKernel, ref.SpanTrail = PresetSpans(ScheduleRetrieval)
	// Pruning from layer L leaves at least L/nLayer of the work.
	for first > 0 && float64(ref.Layers[first])/float64(nLayer) >= ref.Work(nLayer) {
		first--
	}
	return SameWork(ref, nLayer, ref.Layers[first:], 0)
}

// ValidatePreset accepts the schedule presets' names.
func ValidatePreset(name string) error {
	if name != SchedulePaper && name != ScheduleRetrieval {
		return fmt.Errorf("sdtp: unknown schedule %q (%s, %s)", name, SchedulePaper, ScheduleRetrieval)
	}
	return nil
}

// PresetSpans is the span kernel and trail a preset prunes with: none for
// the paper's schedule, RetrievalSpanKernel and RetrievalSpanTrail for the
// retrieval schedule.
func PresetSpans(name string) (kernel, trail int) {
	if name == ScheduleRetrieval {
		return RetrievalSpanKernel, RetrievalSpanTrail
	}
	return 0, 0
}

// Preset is base (the paper's default schedule, or learned predictors'
// trained one) under the named preset: base itself for SchedulePaper,
// RetrievalSchedule(base) for ScheduleRetrieval, with the preset's spans.
func Preset(name string, base Schedule, nLayer int) (Schedule, error) {
	if err := ValidatePreset(name); err != nil {
		return Schedule{}, err
	}
	s := base
	if name == ScheduleRetrieval {
		var err error
		if s, err = RetrievalSchedule(base, nLayer); err != nil {
			return s, err
		}
	}
	s.SpanKernel, s.SpanTrail = PresetSpans(name)
	return s, nil
}
