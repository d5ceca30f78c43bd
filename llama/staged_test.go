package llama

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx/onnxtest"
	"github.com/go-sdtp/sdtp/sdtp"
)

var longPrompt = strings.Repeat("the quick brown fox jumps over the lazy dog. ", 12)

func TestDenseModeMatchesLlamaCpp(t *testing.T) {
	for arch, path := range tinyModels() {
		t.Run(arch, func(t *testing.T) {
			want, err := loadTiny(t, path, SetContext(1024)).Predict(longPrompt, opts(SetTokens(24), IgnoreEOS)...)
			require.NoError(t, err)
			l := loadTiny(t, path, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeDense}))
			res, err := l.Generate(longPrompt, opts(SetTokens(24), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, want, res.Text)
			require.NotNil(t, res.SDTP)
			assert.InDelta(t, 1.0, res.SDTP.FLOPRatio, 1e-9)
		})
	}
}

func TestPruningModesReportStats(t *testing.T) {
	for _, mode := range []string{ModeRandom, ModeAttention, ModeSDTP, ModeAttentionAcc} {
		t.Run(mode, func(t *testing.T) {
			l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: mode, KeepRatio: 0.7, Seed: 1}))
			res, err := l.Generate(longPrompt, opts(SetTokens(16), IgnoreEOS)...)
			require.NoError(t, err)
			assert.Equal(t, 16, res.GeneratedTokens)
			st := res.SDTP
			require.NotNil(t, st)
			assert.Equal(t, st.Schedule.Expected(res.PromptTokens), st.KeptPerStage)
			assert.Greater(t, st.FLOPRatio, 1.2)
			assert.Len(t, st.KeptPerLayer, 6)
			assert.Less(t, st.KeptPerLayer[5], st.KeptPerLayer[0])
			want := mode
			if mode == ModeSDTP {
				want = ModeAttentionAcc // no predictors for the tiny model: the visible fallback
				assert.Equal(t, sdtp.RetrievalSpanKernel, st.Schedule.SpanKernel, "the retrieval schedule")
				assert.Equal(t, []int{2}, st.Schedule.Layers, "one cut at the paper layer nearest 0.4·6")
			}
			assert.Equal(t, want, st.Scorer)
		})
	}
}

func TestSDTPOptionsValidation(t *testing.T) {
	_, err := New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: "bogus"}))
	assert.ErrorContains(t, err, "unknown SDTP mode")
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{0}}))
	assert.Error(t, err)
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, KeepRatio: 1.5}))
	assert.Error(t, err)
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: []int{3, 2}}))
	assert.Error(t, err)
	s, err := sdtp.DefaultSchedule(4, 0.9)
	require.NoError(t, err)
	l := loadTiny(t, tiny.llama, WithSDTP(SDTPOptions{Mode: ModeRandom, Layers: s.Layers}))
	_, err = l.Predict("the cat", opts(SetTokens(4))...)
	assert.NoError(t, err)
}

func TestConcurrentStagedRequests(t *testing.T) {
	l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention}))
	want, err := l.Predict(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			got, err := l.Predict(longPrompt, opts(SetTokens(8), IgnoreEOS)...)
			if err == nil && got != want {
				err = assert.AnError
			}
			errs <- err
		}()
	}
	for range 6 {
		assert.NoError(t, <-errs)
	}
}

func TestStagedContextLimits(t *testing.T) {
	l := loadTiny(t, tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeRandom}))
	_, err := l.Predict(strings.Repeat("the cat ", 200), opts(SetTokens(4))...)
	assert.ErrorIs(t, err, ErrContextFull)
	// Tokens = 0 stops at the window; more tokens than fit shift it, as
	// llama.cpp's path does (TestStagedContextShiftMatchesLlamaCpp).
	res, err := l.Generate("the cat", opts(SetTokens(0), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 256-res.PromptTokens+1, res.GeneratedTokens)
	res, err = l.Generate("the cat", opts(SetTokens(400), IgnoreEOS, SetNKeep(2))...)
	require.NoError(t, err)
	assert.Equal(t, 400, res.GeneratedTokens)
	// A prompt that fills the window and keeps all of itself leaves nothing to drop.
	full := ""
	for k := 100; k < 300 && full == ""; k++ {
		for _, end := range []string{"", " a", ".", " the", "s"} {
			text := strings.Repeat(" cat", k) + end
			if toks, err := l.model.Tokenize(text, true, false); err == nil && len(toks) == 255 {
				full = text
				break
			}
		}
	}
	require.NotEmpty(t, full, "a 255-token prompt")
	res, err = l.Generate(full, opts(SetTokens(400), IgnoreEOS, SetNKeep(-1))...)
	assert.ErrorIs(t, err, ErrContextFull)
	assert.Equal(t, 255, res.PromptTokens)
}

func TestSDTPModeUsesLearnedPredictors(t *testing.T) {
	hash, err := predictor.EmbeddingHash(tiny.gemma3)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "preds")
	onnxtest.WriteGemma3(t, dir, hash, []int{2, 4}, 0.6, nil)

	l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeLearned, Predictors: dir}))
	res, err := l.Generate(longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, sdtp.Uniform([]int{2, 4}, 0.6), res.SDTP.Schedule, "the predictors' own schedule")
	assert.Equal(t, ScorerONNX, res.SDTP.Scorer)
	assert.Equal(t, res.SDTP.Schedule.Expected(res.PromptTokens), res.SDTP.KeptPerStage)

	// Mode sdtp: fused with the question attention, at the retrieval
	// schedule of the predictors': 2,4 @ 0.6 leaves 0.653 of the work on
	// 6 layers; one cut at layer 2 (nearest 0.4·6) leaves (2 + 4r)/6, so
	// r = 0.48, with spans.
	res, err = loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeSDTP, Predictors: dir})).Generate(longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, ModeHybrid+"/"+ScorerONNX, res.SDTP.Scorer)
	assert.Equal(t, []int{2}, res.SDTP.Schedule.Layers)
	assert.InDelta(t, 0.48, res.SDTP.Schedule.KeepRatios[0], 1e-6)
	assert.Equal(t, [2]int{sdtp.RetrievalSpanKernel, sdtp.RetrievalSpanTrail}, [2]int{res.SDTP.Schedule.SpanKernel, res.SDTP.Schedule.SpanTrail})

	// Found beside the model without being named.
	model := filepath.Join(t.TempDir(), "m.gguf")
	data, err := os.ReadFile(tiny.gemma3)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(model, data, 0o644))
	onnxtest.WriteGemma3(t, strings.TrimSuffix(model, ".gguf")+".predictors", hash, []int{3}, 0.6, nil)
	res, err = loadTiny(t, model, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeLearned})).Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, res.SDTP.Schedule.Layers)

	// Predictors for another model are refused.
	other := filepath.Join(t.TempDir(), "other")
	onnxtest.WriteGemma3(t, other, "0000", []int{2}, 0.6, nil)
	_, err = New(tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeSDTP, Predictors: other}))
	assert.ErrorContains(t, err, "embedding hash")
	_, err = New(tiny.llama, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeSDTP, Predictors: dir}))
	assert.ErrorContains(t, err, "the model is llama")
}

func TestSDTPModeUsesHeadsInsideTheGGUF(t *testing.T) {
	model := filepath.Join(t.TempDir(), "with-heads.gguf")
	heads := &gguf.Heads{Layers: []int{1, 3}, KeepRatios: []float64{0.7, 0.7}, HeadKeep: sdtp.HeadKeep, TailKeepFrac: sdtp.TailKeepFrac}
	for i := range heads.Layers {
		heads.MLPs = append(heads.MLPs, predictor.RandomMLP(64, 16, uint64(5+i)))
	}
	require.NoError(t, gguf.Embed(tiny.gemma3, model, heads))

	l := loadTiny(t, model, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeLearned}))
	res, err := l.Generate(longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3}, res.SDTP.Schedule.Layers, "no flags: the heads in the file are used")
	assert.Equal(t, ScorerGGUFHeads, res.SDTP.Scorer)
	assert.Equal(t, res.SDTP.Schedule.Expected(res.PromptTokens), res.SDTP.KeptPerStage)

	res, err = loadTiny(t, model, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeSDTP})).Generate(longPrompt, opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, []int{3}, res.SDTP.Schedule.Layers, "the heads' layers from 6/2 on")
	assert.Equal(t, ModeHybrid+"/"+ScorerGGUFHeads, res.SDTP.Scorer)

	// The same file in llama.cpp's own mode is an ordinary model.
	plain, err := loadTiny(t, model).Predict("the cat", opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	want, err := loadTiny(t, tiny.gemma3).Predict("the cat", opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, want, plain)
}

// A pruning mode on an architecture the engine does not stage is refused;
// llama.cpp's own path runs the model, and mode dense falls back to it.
func TestPruningModesRefuseUnstagedArchitectures(t *testing.T) {
	for _, mode := range []string{ModeSDTP, ModeRandom, ModeAttention} {
		l, err := New(tiny.mistral3, SetContext(256), WithSDTP(SDTPOptions{Mode: mode}))
		assert.Nil(t, l)
		assert.ErrorIs(t, err, ErrUnsupportedArch, mode)
		assert.ErrorContains(t, err, "mistral3")
		assert.ErrorContains(t, err, "mode llamacpp runs any model")
	}
	want, err := loadTiny(t, tiny.mistral3).Generate("the cat", opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 8, want.GeneratedTokens)
	dense, err := loadTiny(t, tiny.mistral3, WithSDTP(SDTPOptions{Mode: ModeDense})).Generate("the cat", opts(SetTokens(8), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, want.Text, dense.Text)
	assert.Nil(t, dense.SDTP, "llama_decode ran it")
}

// Mode hybrid fuses the learned predictors with the accumulated question
// attention: at attention weight 0 it keeps what sdtp keeps, at 1 what
// attention-acc keeps on the same schedule (asking with the same queries:
// the default block's sampled ones left out), in between something else.
func TestHybridMode(t *testing.T) {
	model := filepath.Join(t.TempDir(), "with-heads.gguf")
	heads := &gguf.Heads{Layers: []int{1, 3}, KeepRatios: []float64{0.7, 0.7}, HeadKeep: sdtp.HeadKeep, TailKeepFrac: sdtp.TailKeepFrac}
	for i := range heads.Layers {
		heads.MLPs = append(heads.MLPs, predictor.RandomMLP(64, 16, uint64(5+i)))
	}
	dropped := func(path string, o SDTPOptions) []int {
		t.Helper()
		res, err := loadTiny(t, path, SetContext(1024), WithSDTP(o)).Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
		require.NoError(t, err)
		assert.Equal(t, []int{1, 3}, res.SDTP.Schedule.Layers)
		return res.SDTP.DroppedAt
	}
	byWeight := map[float64][]int{}
	for _, w := range []float64{0, 1, 0.5} {
		f := predictor.DefaultFusion(2)
		f.AttentionWeights, f.AttentionSampled = []float64{w, w}, 0
		heads.Fusion = &f
		require.NoError(t, gguf.Embed(tiny.gemma3, model, heads))
		byWeight[w] = dropped(model, SDTPOptions{Mode: ModeHybrid})
	}
	assert.Equal(t, dropped(model, SDTPOptions{Mode: ModeLearned}), byWeight[0], "weight 0: the learned scores' choice")
	assert.Equal(t, dropped(model, SDTPOptions{Mode: ModeAttentionAcc, Layers: []int{1, 3}, KeepRatio: 0.7}), byWeight[1], "weight 1: attention-acc's")
	assert.NotEqual(t, byWeight[0], byWeight[1])
	assert.NotEqual(t, byWeight[0], byWeight[0.5])

	// ONNX predictors without a fusion block: the default fusion.
	hash, err := predictor.EmbeddingHash(tiny.gemma3)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "preds")
	onnxtest.WriteGemma3(t, dir, hash, []int{2, 4}, 0.6, nil)
	res, err := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeHybrid, Predictors: dir})).Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, []int{2, 4}, res.SDTP.Schedule.Layers)
	assert.Equal(t, res.SDTP.Schedule.Expected(res.PromptTokens), res.SDTP.KeptPerStage)

	// No learned predictors: refused, naming the mode that needs none.
	_, err = New(tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeHybrid}))
	assert.ErrorContains(t, err, "mode hybrid needs learned predictors")
	assert.ErrorContains(t, err, ModeAttentionAcc)
}

func TestSpanKernelOption(t *testing.T) {
	l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention, KeepRatio: 0.5, SpanKernel: 7}))
	res, err := l.Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Equal(t, 7, res.SDTP.Schedule.SpanKernel)
	plain, err := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention, KeepRatio: 0.5})).Generate(longPrompt, opts(SetTokens(2), IgnoreEOS)...)
	require.NoError(t, err)
	assert.Zero(t, plain.SDTP.Schedule.SpanKernel)
	assert.Equal(t, plain.SDTP.KeptPerStage, res.SDTP.KeptPerStage, "the same budget")
	assert.NotEqual(t, plain.SDTP.DroppedAt, res.SDTP.DroppedAt, "spans change the choice")

	for _, o := range []SDTPOptions{{Mode: ModeDense, SpanKernel: 7}, {Mode: ModeLlamaCpp, SpanKernel: 7}} {
		_, err := New(tiny.gemma3, SetContext(256), WithSDTP(o))
		assert.ErrorContains(t, err, "which prunes nothing", o.Mode)
	}
	_, err = New(tiny.gemma3, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeAttention, SpanKernel: 4}))
	assert.ErrorContains(t, err, "span kernel 4")
}

// Schedule presets: retrieval by default in mode sdtp, paper in the other
// modes; Layers, KeepRatio and the span options replace their parts, and
// −1 turns a preset's spans off.
func TestSchedulePresets(t *testing.T) {
	sched := func(o SDTPOptions) sdtp.Schedule {
		t.Helper()
		res, err := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(o)).Generate(longPrompt, opts(SetTokens(1), IgnoreEOS)...)
		require.NoError(t, err)
		return res.SDTP.Schedule
	}
	paper, err := sdtp.DefaultSchedule(6, sdtp.DefaultKeepRatio)
	require.NoError(t, err)
	retrieval, err := sdtp.RetrievalSchedule(paper, 6)
	require.NoError(t, err)

	assert.Equal(t, retrieval, sched(SDTPOptions{Mode: ModeSDTP}))
	assert.Equal(t, paper, sched(SDTPOptions{Mode: ModeAttention}))
	assert.Equal(t, paper, sched(SDTPOptions{Mode: ModeSDTP, Schedule: sdtp.SchedulePaper}))
	assert.Equal(t, retrieval, sched(SDTPOptions{Mode: ModeAttentionAcc, Schedule: sdtp.ScheduleRetrieval}))

	s := sched(SDTPOptions{Mode: ModeSDTP, KeepRatio: 0.5, SpanKernel: 13})
	assert.Equal(t, retrieval.Layers, s.Layers)
	assert.Equal(t, sdtp.Uniform(retrieval.Layers, 0.5).KeepRatios, s.KeepRatios)
	assert.Equal(t, [2]int{13, sdtp.RetrievalSpanTrail}, [2]int{s.SpanKernel, s.SpanTrail})

	s = sched(SDTPOptions{Mode: ModeSDTP, SpanKernel: -1, SpanTrail: -1})
	assert.Equal(t, [2]int{0, 0}, [2]int{s.SpanKernel, s.SpanTrail}, "-1: no spans")
	assert.True(t, sched(SDTPOptions{Mode: ModeSDTP}).SpanTrailSentence, "the retrieval preset's trails end at sentences")
	assert.False(t, sched(SDTPOptions{Mode: ModeSDTP, SpanTrailEnd: TrailEndOpen}).SpanTrailSentence)
	s = sched(SDTPOptions{Mode: ModeAttention, SpanTrail: 8, SpanTrailEnd: TrailEndSentence})
	assert.Equal(t, 8, s.SpanTrail)
	assert.True(t, s.SpanTrailSentence, "a paper-schedule trail ended at sentences on request")
	assert.Equal(t, sdtp.RetrievalEchoHops, sched(SDTPOptions{Mode: ModeSDTP}).SpanEchoHops)
	assert.Zero(t, sched(SDTPOptions{Mode: ModeSDTP, SpanEcho: -1}).SpanEchoHops, "no echo, no hops")
	assert.Zero(t, sched(SDTPOptions{Mode: ModeSDTP, SpanEchoHops: -1}).SpanEchoHops)
	assert.Equal(t, 1, sched(SDTPOptions{Mode: ModeAttention, SpanEcho: 4, SpanEchoHops: 1}).SpanEchoHops)
	s = sched(SDTPOptions{Mode: ModeSDTP})
	assert.True(t, s.SpanEchoFirst && s.SpanSentences, "the retrieval preset ranks echoes first and keeps whole sentences")
	s = sched(SDTPOptions{Mode: ModeSDTP, SpanEchoRank: EchoRankShared, SpanSentences: SentencesTokens})
	assert.False(t, s.SpanEchoFirst || s.SpanSentences)
	assert.False(t, sched(SDTPOptions{Mode: ModeSDTP, SpanEcho: -1}).SpanEchoFirst, "no echo, none ranked first")
	s = sched(SDTPOptions{Mode: ModeAttention, SpanEcho: 5, SpanEchoRank: EchoRankFirst, SpanSentences: SentencesWhole})
	assert.True(t, s.SpanEchoFirst && s.SpanSentences, "both on request at the paper's schedule")
	s = sched(SDTPOptions{Mode: ModeRandom, SpanSentences: SentencesWhole})
	assert.True(t, s.SpanSentences, "whole sentences at the paper schedule")
	s = sched(SDTPOptions{Mode: ModeSDTP, Layers: []int{2, 4}})
	assert.Equal(t, sdtp.Uniform([]int{2, 4}, sdtp.DefaultKeepRatio).KeepRatios, s.KeepRatios, "the user's layers")
	assert.Equal(t, sdtp.RetrievalSpanTrail, s.SpanTrail, "with the preset's spans")

	for o, want := range map[*SDTPOptions]string{
		{Mode: ModeSDTP, Schedule: "fast"}:                          `unknown schedule "fast"`,
		{Mode: ModeDense, Schedule: "paper"}:                        "schedule paper given in mode dense",
		{Mode: ModeSDTP, SpanKernel: -2}:                            "span kernel -2",
		{Mode: ModeSDTP, SpanTrail: -3}:                             "span trail -3",
		{Mode: ModeAttention, SpanEchoHops: 2}:                      "span echo hops 2 need a span echo",
		{Mode: ModeSDTP, SpanEchoHops: -2}:                          "span echo hops -2",
		{Mode: ModeDense, SpanEchoHops: 1}:                          "span echo hops 1 given in mode dense",
		{Mode: ModeSDTP, SpanTrailEnd: "x"}:                         `span trail end "x": want "sentence", "open"`,
		{Mode: ModeDense, SpanTrailEnd: "open"}:                     `span trail end "open" given in mode dense`,
		{Mode: ModeAttention, SpanTrailEnd: TrailEndSentence}:       "without a trail to end",
		{Mode: ModeSDTP, SpanTrail: -1, SpanTrailEnd: TrailEndOpen}: "without a trail to end",
		{Mode: ModeSDTP, SpanEchoRank: "top"}:                       `span echo rank "top": want "first", "shared"`,
		{Mode: ModeAttention, SpanEchoRank: EchoRankFirst}:          "without an echo to rank",
		{Mode: ModeDense, SpanEchoRank: EchoRankShared}:             `span echo rank "shared" given in mode dense`,
		{Mode: ModeSDTP, SpanSentences: "all"}:                      `span sentences "all": want "whole", "tokens"`,
		{Mode: ModeLlamaCpp, SpanSentences: SentencesWhole}:         `span sentences "whole" given in mode llamacpp`,
		{Mode: ModeLearned}:                                         "mode learned needs learned predictors",
		{Mode: ModeRandom, Predictors: "x"}:                         "modes sdtp, learned and hybrid",
	} {
		_, err := New(tiny.gemma3, SetContext(256), WithSDTP(*o))
		assert.ErrorContains(t, err, want)
	}
}
