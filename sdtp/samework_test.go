package sdtp

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkOfTheDocumentedSchedules(t *testing.T) {
	def, err := DefaultSchedule(18, 0.9)
	require.NoError(t, err)
	assert.InDelta(t, 0.641, def.Work(18), 5e-4, "docs/SCHEDULES.md, probe 1")
	assert.InDelta(t, 0.639, Uniform([]int{6, 12}, 0.58).Work(18), 5e-4)
	assert.InDelta(t, 0.640, Uniform([]int{6}, 0.46).Work(18), 5e-4)
	assert.Equal(t, 1.0, Schedule{}.Work(18), "no pruning, all the work")
	qwen, err := DefaultSchedule(24, 0.9)
	require.NoError(t, err)
	assert.InDelta(t, 0.649, qwen.Work(24), 5e-4, "Qwen2.5 0.5B, docs/SCHEDULES.md")
}

func TestSameWorkSchedules(t *testing.T) {
	def, err := DefaultSchedule(18, 0.9)
	require.NoError(t, err)
	same, err := SameWork(def, 18, def.Layers, 0)
	require.NoError(t, err)
	for _, r := range same.KeepRatios {
		assert.InDelta(t, 0.9, r, 1e-6, "tilt 0 over the same layers is the reference")
	}

	tilted, err := SameWork(def, 18, def.Layers, 0.5)
	require.NoError(t, err)
	assert.InDelta(t, def.Work(18), tilted.Work(18), 1e-6)
	for i := 1; i < len(tilted.KeepRatios); i++ {
		assert.Less(t, tilted.KeepRatios[i], tilted.KeepRatios[i-1], "each stage prunes harder than the one before")
	}
	assert.Greater(t, tilted.KeepRatios[0], 0.9, "less pruning early")
	first, last := tilted.KeepRatios[0], tilted.KeepRatios[len(tilted.KeepRatios)-1]
	assert.InDelta(t, 3, logRatio(last)/logRatio(first), 1e-9, "tilt 0.5: the last stage prunes 3× as hard (log keep)")

	late, err := SameWork(def, 18, []int{9, 10, 12, 14, 15, 17}, 0)
	require.NoError(t, err)
	assert.InDelta(t, def.Work(18), late.Work(18), 1e-6)
	assert.Less(t, late.KeepRatios[0], 0.9, "starting later, each stage prunes harder")
	require.NoError(t, late.Validate(18))

	_, err = SameWork(def, 18, []int{12, 15}, 0)
	assert.ErrorContains(t, err, "from layer 12 leaves at least 0.667", "too late to reach the work")
	_, err = SameWork(def, 18, def.Layers, 1)
	assert.ErrorContains(t, err, "tilt 1")
	_, err = SameWork(def, 18, []int{4, 3}, 0)
	assert.ErrorContains(t, err, "strictly increasing")
}

func logRatio(r float64) float64 { return -math.Log(r) }

func TestRetrievalSchedule(t *testing.T) {
	for _, c := range []struct {
		nLayer int
		cut    int
		keep   float64
	}{
		{18, 7, 0.4131},  // Gemma 3 270M: 0.4·18 = 7.2
		{24, 10, 0.3987}, // Qwen2.5 0.5B: 9.6, between 7 and 10
		{28, 12, 0},      // Qwen2.5 1.5B: 11.2, between 9 and 12
	} {
		ref, err := DefaultSchedule(c.nLayer, DefaultKeepRatio)
		require.NoError(t, err)
		s, err := RetrievalSchedule(ref, c.nLayer)
		require.NoError(t, err)
		assert.Equal(t, []int{c.cut}, s.Layers, "one cut")
		assert.InDelta(t, ref.Work(c.nLayer), s.Work(c.nLayer), 1e-6, "the paper schedule's prefill work")
		if c.keep > 0 {
			assert.InDelta(t, c.keep, s.KeepRatios[0], 1e-4)
		}
		assert.Equal(t, RetrievalSpanKernel, s.SpanKernel)
		assert.Equal(t, RetrievalSpanTrail, s.SpanTrail)
	}
	// A ref that prunes hard: 1,3 @ 0.1 on 6 layers leaves 0.205 of the
	// work. Layer 3 is nearest 0.4·6 = 2.4, but a cut there leaves at least
	// 3/6, so the cut is at layer 1.
	ref := Uniform([]int{1, 3}, 0.1)
	s, err := RetrievalSchedule(ref, 6)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, s.Layers)
	assert.InDelta(t, ref.Work(6), s.Work(6), 1e-6)
	_, err = RetrievalSchedule(Uniform([]int{2, 40}, 0.9), 18)
	assert.Error(t, err, "an invalid reference")
}

func TestPresets(t *testing.T) {
	paper, err := DefaultSchedule(18, DefaultKeepRatio)
	require.NoError(t, err)
	s, err := Preset(SchedulePaper, paper, 18)
	require.NoError(t, err)
	assert.Equal(t, paper, s, "the paper's schedule, no spans")
	retrieval, err := RetrievalSchedule(paper, 18)
	require.NoError(t, err)
	s, err = Preset(ScheduleRetrieval, paper, 18)
	require.NoError(t, err)
	assert.Equal(t, retrieval, s)
	assert.Equal(t, Spans{Kernel: RetrievalSpanKernel, Trail: RetrievalSpanTrail, Echo: RetrievalSpanEcho, TrailSentence: true, EchoHops: RetrievalEchoHops,
		EchoFirst: true, Sentences: true}, PresetSpans(ScheduleRetrieval))
	assert.Equal(t, Spans{}, PresetSpans(SchedulePaper))
	assert.Equal(t, 5, s.SpanEcho, "the retrieval schedule shares echoes")
	assert.Equal(t, Spans{Kernel: RetrievalSpanKernel, Trail: RetrievalSpanTrail, TrailSentence: true, Sentences: true}, s.WithEcho(0).Spans(),
		"no echo: no hops, nothing ranked first")
	assert.Equal(t, Spans{Kernel: RetrievalSpanKernel, Trail: RetrievalSpanTrail, Echo: 3, TrailSentence: true, EchoHops: RetrievalEchoHops,
		EchoFirst: true, Sentences: true}, s.WithEcho(3).Spans())
	require.NoError(t, ValidatePreset(SchedulePaper))
	assert.ErrorContains(t, ValidatePreset("fast"), `unknown schedule "fast"`)
	_, err = Preset("", paper, 18)
	assert.ErrorContains(t, err, `unknown schedule ""`)
	_, err = RetrievalSchedule(Uniform([]int{2, 40}, 0.9), 18)
	assert.ErrorContains(t, err, "out of range")
}
