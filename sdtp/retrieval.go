package sdtp

import (
	"fmt"
	"math"
)

// Schedule presets: the paper's placement, and the retrieval schedule that
// keeps answers on long-prompt retrieval and QA (issue 16;
// docs/SCHEDULES.md, "The retrieval schedule").
const (
	SchedulePaper     = "paper"
	ScheduleRetrieval = "retrieval"
)

// Spans of the retrieval schedule: SnapKV's kernel of 7 around each
// token; a trail of at most 48 following tokens that stops at the end of
// the token's sentence: 48 holds a UUID-like code (36 characters, one
// token per digit, after the words of its key; a trail of 32 lost 16 of
// the 22 codes dense gives in Gemma 3 270M's 24 2048-token single-uuid
// prompts), and the sentence's end keeps the trails of other
// high-scoring tokens from crowding weakly scored needles out of the cut
// (Gemma at 4096 tokens, the 8 needle tasks: 102 answers of dense's 115
// with open trails of 48, 113 with bounded ones; docs/HYBRID.md,
// "Sentence-bounded trails");
// and echoes of 5 tokens ("numbers for the silver key"): on
// Qwen2.5-Coder-0.5B-Instruct's multi-value prompts 3 and 5 keep the same
// needles, and on Gemma 3 270M runs of 3 shared with the question's
// neighbourhood ("What is the") lost more (docs/HYBRID.md, "Echoes");
// and 3 echo hops: variable tracking chains up to 4 assignments, whose
// later links the question's attention does not find (Qwen, 24 prompts
// at 2048 tokens: 2 of 20 answered without hops, 16 with them, dense
// 14; docs/HYBRID.md, "Echo hops").
const (
	RetrievalSpanKernel = SnapKVSpanKernel
	RetrievalSpanTrail  = 48
	RetrievalSpanEcho   = 5
	RetrievalEchoHops   = 3
)

// Spans are a schedule's settings for keeping tokens together
// (Schedule.SpanKernel, SpanTrail and SpanEcho).
type Spans struct {
	Kernel, Trail, Echo int
	TrailSentence       bool // Schedule.SpanTrailSentence
	EchoHops            int  // Schedule.SpanEchoHops
	EchoFirst           bool // Schedule.SpanEchoFirst
	Sentences           bool // Schedule.SpanSentences
}

// Spans are s's span settings.
func (s Schedule) Spans() Spans {
	return Spans{s.SpanKernel, s.SpanTrail, s.SpanEcho, s.SpanTrailSentence, s.SpanEchoHops, s.SpanEchoFirst, s.SpanSentences}
}

// WithSpans is s with the span settings sp.
func (s Schedule) WithSpans(sp Spans) Schedule {
	s.SpanKernel, s.SpanTrail, s.SpanEcho, s.SpanTrailSentence, s.SpanEchoHops = sp.Kernel, sp.Trail, sp.Echo, sp.TrailSentence, sp.EchoHops
	s.SpanEchoFirst, s.SpanSentences = sp.EchoFirst, sp.Sentences
	return s
}

// WithEcho is s with span echo echo; with none (0) also without the echo
// hops and the echo ranking, which start from an echo.
func (s Schedule) WithEcho(echo int) Schedule {
	s.SpanEcho = echo
	if echo == 0 {
		s.SpanEchoHops, s.SpanEchoFirst = 0, false
	}
	return s
}

// RetrievalCutDepth is where the retrieval schedule prunes, as a fraction
// of the model's depth. GemFilter (arXiv 2409.17422) selects once at
// layer 13–19 of 32 and FastKV (arXiv 2502.01068) at a middle layer: by
// then question attention singles out the answer, and a token pruned
// there costs the layers after it. Measured here (docs/SCHEDULES.md, "The
// retrieval schedule"): on Gemma 3 270M one cut at layer 5 lost half the
// needles that a cut at layer 7 kept, and cuts at layers 9 and later left
// the last layers too few tokens for QA and continuation.
const RetrievalCutDepth = 0.4

// RetrievalSchedule is ref's prefill work (Schedule.Work) spent in one
// cut: before the layer of ref nearest RetrievalCutDepth·nLayer (the
// earlier one on a tie; only layers that can reach ref's work), at the
// keep ratio SameWork solves, with the retrieval spans. Pruning gently at
// many stages (the paper's 10 × 0.9) decides from early layers, where
// question attention does not yet find the answer; pruning at many late
// stages leaves the last layers a few percent of the prompt, too little
// for a QA paragraph or a continuation. On Gemma 3 270M it turns 10 × 0.9
// from layer 2 into one cut at layer 7 keeping 0.413 (0.641 of the dense
// work either way); on Qwen2.5 0.5B, layer 10 keeping 0.399. Errors: ref
// is invalid.
func RetrievalSchedule(ref Schedule, nLayer int) (Schedule, error) {
	if err := ref.Validate(nLayer); err != nil {
		return Schedule{}, err
	}
	target, work := RetrievalCutDepth*float64(nLayer), ref.Work(nLayer)
	cut := -1
	for _, l := range ref.Layers {
		// A cut at layer l leaves at least l/nLayer of the work; ref's
		// first layer always leaves less than ref does.
		if float64(l)/float64(nLayer) >= work {
			continue
		}
		if cut < 0 || math.Abs(float64(l)-target) < math.Abs(float64(cut)-target) {
			cut = l
		}
	}
	return SameWork(ref.WithSpans(PresetSpans(ScheduleRetrieval)), nLayer, []int{cut}, 0)
}

// ValidatePreset accepts the schedule presets' names.
func ValidatePreset(name string) error {
	if name != SchedulePaper && name != ScheduleRetrieval {
		return fmt.Errorf("sdtp: unknown schedule %q (%s, %s)", name, SchedulePaper, ScheduleRetrieval)
	}
	return nil
}

// PresetSpans are the spans a preset prunes with: none for the paper's
// schedule; for the retrieval schedule RetrievalSpanKernel,
// RetrievalSpanTrail (bounded by sentence ends), RetrievalSpanEcho with
// RetrievalEchoHops, echoes ranked first (EchoesFirst) and whole
// sentences in a prompt that asks a question (PoolSentences,
// AsksQuestion). The last two keep a QA answer's sentence and the
// sentence that repeats the question's words: Qwen2.5-Coder-0.5B-Instruct's
// HotpotQA at 4096 tokens answered 9 of dense's 14 prompts without them
// and 14 with them, needles and continuation perplexity as before
// (docs/HYBRID.md, "Whole sentences and echoes first").
func PresetSpans(name string) Spans {
	if name == ScheduleRetrieval {
		return Spans{Kernel: RetrievalSpanKernel, Trail: RetrievalSpanTrail, Echo: RetrievalSpanEcho, TrailSentence: true,
			EchoHops: RetrievalEchoHops, EchoFirst: true, Sentences: true}
	}
	return Spans{}
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
	return s.WithSpans(PresetSpans(name)), nil
}
