package sdtp_test

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// spanPrompt: 100 live tokens at positions 0..99 (protected: 0..3 and
// 90..99), low scores everywhere but one high token inside a 5-token fact
// at 40..44 whose other tokens score lowest of all.
func spanPrompt() ([]int32, []float32) {
	pos := make([]int32, 100)
	scores := make([]float32, 100)
	for i := range pos {
		pos[i] = int32(i)
		scores[i] = 0.1 + 0.001*float32(i%17) // filler, slightly uneven
	}
	for p := 40; p <= 44; p++ {
		scores[p] = 0.01
	}
	scores[42] = 0.9
	scores[0] = 50 // an attention sink: protected, lends nothing
	return pos, scores
}

func TestPoolSpansKeepsASpanWhole(t *testing.T) {
	pos, scores := spanPrompt()
	const n, ratio = 100, 0.2 // 20 kept: the 14 protected and 6 others
	plain, err := sdtp.Select(pos, scores, n, ratio)
	require.NoError(t, err)
	assert.Contains(t, plain, 42)
	for _, p := range []int{40, 41, 43, 44} {
		assert.NotContains(t, plain, p, "without spans the fact loses its low-scoring pieces")
	}

	pooled := sdtp.PoolSpans(pos, scores, nil, n, 5, 0)
	kept, err := sdtp.Select(pos, pooled, n, ratio)
	require.NoError(t, err)
	for p := 40; p <= 44; p++ {
		assert.Contains(t, kept, p, "kernel 5 keeps the 5-token span around the high token")
	}
	assert.Equal(t, scores, spanPromptScores(), "the input is not modified")

	// Protected tokens keep their scores and lend none to neighbours.
	for p := range 4 {
		assert.Equal(t, scores[p], pooled[p])
	}
	assert.Equal(t, scores[95], pooled[95])
	assert.Less(t, pooled[5], float32(1), "position 5 is not pulled up by the sink at 0")
	// Every unprotected token gets the max of its unprotected neighbours.
	assert.Equal(t, float32(0.9), pooled[40])
	assert.Equal(t, float32(0.9), pooled[44])
	assert.NotEqual(t, float32(0.9), pooled[45])
}

func spanPromptScores() []float32 { _, s := spanPrompt(); return s }

// A trail lends a high score forward only: the question-matching words
// ("is") lead, the value's tokens follow and score lowest of all.
func TestPoolSpansTrailKeepsTheValueAfterTheKey(t *testing.T) {
	pos, scores := spanPrompt()
	const n, ratio = 100, 0.3   // 30 kept: the 14 protected and 16 others
	for p := 43; p <= 52; p++ { // a 10-token value right after the key at 42
		scores[p] = 0.01
	}
	centered, err := sdtp.Select(pos, sdtp.PoolSpans(pos, scores, nil, n, 7, 0), n, ratio)
	require.NoError(t, err)
	assert.NotContains(t, centered, 46, "a centered kernel of 7 reaches 3 tokens past the key")

	pooled := sdtp.PoolSpans(pos, scores, nil, n, 3, 10)
	kept, err := sdtp.Select(pos, pooled, n, ratio)
	require.NoError(t, err)
	for p := 41; p <= 52; p++ {
		assert.Contains(t, kept, p, "the key, one token before it and the 10 after it")
	}
	assert.NotEqual(t, float32(0.9), pooled[40], "the trail lends nothing backwards beyond the kernel")
	assert.NotEqual(t, float32(0.9), pooled[53])

	// Live tokens, not positions: with every other position gone, the
	// trail reaches 10 live tokens, 20 positions on.
	var sparsePos []int32
	var sparse []float32
	for i := 0; i < 100; i += 2 {
		sparsePos, sparse = append(sparsePos, int32(i)), append(sparse, scores[i])
	}
	pooledSparse := sdtp.PoolSpans(sparsePos, sparse, nil, n, 0, 10)
	assert.Equal(t, float32(0.9), pooledSparse[31], "position 62: 10 live tokens after 42")
	assert.NotEqual(t, float32(0.9), pooledSparse[32])

	require.NoError(t, sdtp.ValidateSpanTrail(0))
	assert.ErrorContains(t, sdtp.ValidateSpanTrail(-1), "span trail -1")
	s := sdtp.Schedule{Layers: []int{2}, KeepRatios: []float64{0.5}, SpanTrail: -2}
	assert.ErrorContains(t, s.Validate(6), "span trail -2")
}

// A sentence-bounded trail ends with the fact's sentence: the value and
// its full stop keep the key's score, the next sentence does not, and the
// kept tokens it frees go to a weaker fact elsewhere.
func TestPoolSpansTrailStopsAtTheSentenceEnd(t *testing.T) {
	pos, scores := spanPrompt()
	const n, ratio = 100, 0.3
	for p := 43; p <= 70; p++ {
		scores[p] = 0.01
	}
	stops := make([]bool, len(pos))
	stops[50] = true // the value is 43..49, the full stop 50
	scores[30] = 0.5 // a weaker fact
	open := sdtp.PoolSpans(pos, scores, nil, n, 0, 20)
	bounded := sdtp.PoolSpans(pos, scores, stops, n, 0, 20)
	for p := 43; p <= 50; p++ {
		assert.Equal(t, float32(0.9), bounded[p], "position %d: the value and its full stop", p)
	}
	for p := 51; p <= 62; p++ {
		assert.Equal(t, float32(0.9), open[p], "position %d: an open trail runs on", p)
		assert.Equal(t, float32(0.01), bounded[p], "position %d: the next sentence borrows nothing", p)
	}
	kept, err := sdtp.Select(pos, bounded, n, ratio)
	require.NoError(t, err)
	assert.Contains(t, kept, 30)
	assert.NotContains(t, kept, 51)

	// A stop does not cut the centered kernel, and a stop on the scoring
	// token itself ends its trail there.
	stops[42] = true
	kernel := sdtp.PoolSpans(pos, scores, stops, n, 3, 20)
	assert.Equal(t, float32(0.9), kernel[43], "the kernel's neighbour after the key")
	assert.Equal(t, float32(0.01), kernel[44])

	assert.True(t, sdtp.EndsSentence([]byte(".")))
	assert.True(t, sdtp.EndsSentence([]byte("?\n")))
	assert.True(t, sdtp.EndsSentence([]byte(" end!")))
	assert.False(t, sdtp.EndsSentence([]byte(" is:")))
	assert.False(t, sdtp.EndsSentence([]byte("-")))
}

func TestPoolSpansKernelZeroIsTheOldSelection(t *testing.T) {
	pos, scores := spanPrompt()
	assert.Equal(t, scores, sdtp.PoolSpans(pos, scores, nil, 100, 0, 0))
	assert.Equal(t, scores, sdtp.PoolSpans(pos, scores, nil, 100, 1, 0))
	require.NoError(t, sdtp.ValidateSpanKernel(0))
	require.NoError(t, sdtp.ValidateSpanKernel(sdtp.SnapKVSpanKernel))
	require.NoError(t, sdtp.ValidateSpanKernel(sdtp.SpecPrefillSpanKernel))
	assert.ErrorContains(t, sdtp.ValidateSpanKernel(4), "odd")
	assert.ErrorContains(t, sdtp.ValidateSpanKernel(-3), "odd")
	s := sdtp.Schedule{Layers: []int{2}, KeepRatios: []float64{0.5}, SpanKernel: 6}
	assert.ErrorContains(t, s.Validate(6), "span kernel 6")
	s.SpanKernel = 7
	assert.NoError(t, s.Validate(6))
}

// In a prefill, the span kernel acts on live tokens in position order;
// kernel 0 keeps exactly the tokens the plain schedule keeps.
func TestPrefillWithSpanKernel(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	toks := prompt(200)
	sched := sdtp.Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.5, 0.5}}
	plain, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(3), sched, toks, 64)
	require.NoError(t, err)
	sched0 := sched
	sched0.SpanKernel = 0
	again, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(3), sched0, toks, 64)
	require.NoError(t, err)
	assert.Equal(t, plain.LivePositions, again.LivePositions)

	sched.SpanKernel = 7
	spans, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(3), sched, toks, 64)
	require.NoError(t, err)
	assert.Equal(t, plain.KeptPerStage, spans.KeptPerStage, "the same budget")
	assert.NotEqual(t, plain.LivePositions[1], spans.LivePositions[1])
	assert.Less(t, runs(spans.LivePositions[1]), runs(plain.LivePositions[1]), "kept tokens come in fewer, longer runs")

	sched.SpanKernel = 8
	_, err = sdtp.Prefill(context.Background(), e, predictor.NewRandom(3), sched, toks, 64)
	assert.ErrorContains(t, err, "span kernel 8")
}

// runs counts maximal runs of consecutive positions.
func runs(pos []int32) int {
	n := 0
	for i, p := range pos {
		if i == 0 || p != pos[i-1]+1 {
			n++
		}
	}
	return n
}

// echoPrompt: 100 tokens (protected: 0..3 and 90..99) of distinct filler,
// the phrase 7 8 9 (a key) at 20..22, 50..52 and 70..72, and the question
// repeating it at 93..95. The copy at 50 draws the question's attention;
// the others score like filler.
func echoPrompt() (tokens, pos []int32, scores []float32) {
	tokens, pos, scores = make([]int32, 100), make([]int32, 100), make([]float32, 100)
	for i := range tokens {
		tokens[i], pos[i] = int32(1000+i), int32(i)
		scores[i] = 0.1 + 0.001*float32(i%17)
	}
	for _, at := range []int{20, 50, 70, 93} {
		tokens[at], tokens[at+1], tokens[at+2] = 7, 8, 9
	}
	scores[52] = 0.9
	scores[95] = 5 // protected: keeps its own score, lends none
	return tokens, pos, scores
}

func TestShareEchoesKeepsEveryCopy(t *testing.T) {
	tokens, pos, scores := echoPrompt()
	const n = 100
	shared := sdtp.ShareEchoes(tokens, pos, scores, 3)
	for _, p := range []int{22, 52, 72} {
		assert.Equal(t, float32(0.9), shared[p], "position %d ends the asked run 7 8 9", p)
	}
	assert.Equal(t, float32(5), shared[95], "a protected token keeps its score")
	for _, p := range []int{20, 21, 50, 51, 53} {
		assert.Equal(t, scores[p], shared[p], "position %d ends no asked 3-token run", p)
	}
	assert.Equal(t, float32(0.9), sdtp.ShareEchoes(tokens, pos, scores, 2)[22], "8 9 is asked too")
	assert.Equal(t, scores, sdtp.ShareEchoes(tokens, pos, scores, 0), "0: off")

	// With a trail, each copy keeps its value (the 5 tokens after it).
	kept, err := sdtp.Select(pos, sdtp.PoolSpans(pos, shared, nil, n, 0, 5), n, 0.4)
	require.NoError(t, err)
	plain, err := sdtp.Select(pos, sdtp.PoolSpans(pos, scores, nil, n, 0, 5), n, 0.4)
	require.NoError(t, err)
	for _, p := range []int{23, 27, 53, 57, 73, 77} {
		assert.Contains(t, kept, p)
	}
	assert.NotContains(t, plain, 23, "without sharing, a copy the question did not attend to goes")

	// Only the prompt's last EchoWindow tokens ask: of a 400-token prompt
	// (tail 360..399), a phrase at 362..364 is document text, one at
	// 380..382 is the question.
	long, longPos, longScores := make([]int32, 400), make([]int32, 400), make([]float32, 400)
	for i := range long {
		long[i], longPos[i], longScores[i] = int32(1000+i), int32(i), 0.1
	}
	for _, at := range []int{100, 200, 362} {
		long[at], long[at+1], long[at+2] = 7, 8, 9
	}
	for _, at := range []int{150, 250, 380} {
		long[at], long[at+1], long[at+2] = 4, 5, 6
	}
	longScores[102], longScores[152] = 0.9, 0.9
	longShared := sdtp.ShareEchoes(long, longPos, longScores, 3)
	assert.Equal(t, float32(0.1), longShared[202], "7 8 9 is in the tail but before the question")
	assert.Equal(t, float32(0.9), longShared[252], "4 5 6 is in the question")

	// Pruned tokens are not looked at: the live copies still share.
	livePos, live := []int32{0, 22, 40, 52, 95}, []float32{1, 0.2, 0.3, 0.9, 5}
	assert.Equal(t, []float32{1, 0.9, 0.3, 0.9, 5}, sdtp.ShareEchoes(tokens, livePos, live, 3))
}

func TestValidateEchoHops(t *testing.T) {
	require.NoError(t, sdtp.ValidateEchoHops(0, 0))
	require.NoError(t, sdtp.ValidateEchoHops(3, 5))
	assert.ErrorContains(t, sdtp.ValidateEchoHops(-1, 5), "span echo hops -1")
	assert.ErrorContains(t, sdtp.ValidateEchoHops(2, 0), "need a span echo")
	s := sdtp.Schedule{Layers: []int{2}, KeepRatios: []float64{0.5}, SpanEchoHops: 1}
	assert.ErrorContains(t, s.Validate(6), "need a span echo")
}

func TestValidateSpanEcho(t *testing.T) {
	require.NoError(t, sdtp.ValidateSpanEcho(0))
	require.NoError(t, sdtp.ValidateSpanEcho(3))
	assert.ErrorContains(t, sdtp.ValidateSpanEcho(1), "at least 2")
	assert.ErrorContains(t, sdtp.ValidateSpanEcho(-1), "span echo -1")
	s := sdtp.Schedule{Layers: []int{2}, KeepRatios: []float64{0.5}, SpanEcho: 1}
	assert.ErrorContains(t, s.Validate(6), "span echo 1")
}

// boosted is a scorer: rng's scores, and 2 at one position.
type boosted struct {
	rng *predictor.Random
	at  int32
}

func (b boosted) Needs() sdtp.Needs { return sdtp.Needs{} }
func (b boosted) Score(in sdtp.ScoreInput) ([]float32, error) {
	s, err := b.rng.Score(in)
	for i, p := range in.Positions {
		if p == b.at {
			s[i] = 2
		}
	}
	return s, err
}

// In a prefill, echoes of a phrase the tail repeats survive together: the
// copy at 70..72 scores highest, and with echoes the last tokens of the
// other copies take its score.
func TestPrefillWithSpanEcho(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	toks := prompt(200) // protected: 0..3 and 180..199
	for _, at := range []int{30, 70, 110, 150, 190} {
		toks[at], toks[at+1], toks[at+2] = 7, 8, 9
	}
	plain, echo := prefillPair(t, e, toks, 72, sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}},
		func(s *sdtp.Schedule) { s.SpanEcho = 3 })
	ends := []int32{32, 72, 112, 152}
	var keptPlain int
	for _, p := range ends {
		assert.Contains(t, echo.LivePositions[1], p, "every copy's last token takes the best copy's score")
		if slices.Contains(plain.LivePositions[1], p) {
			keptPlain++
		}
	}
	assert.Less(t, keptPlain, len(ends), "without echoes a copy goes")

	sched := sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}, SpanEcho: 1}
	_, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(5), sched, toks, 64)
	assert.ErrorContains(t, err, "span echo 1")
}

// In a prefill, a trail bounded by sentences stops at the token whose
// text is "." (read from the model's vocabulary): the boosted token's
// score reaches the full stop and no further.
func TestPrefillTrailStopsAtTheModelsFullStop(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	dot := fullStop(t, e)
	toks := prompt(200) // protected: 0..3 and 180..199
	toks[55] = dot
	for p := 50; p <= 70; p++ {
		require.Equal(t, p == 55, sdtp.EndsSentence(e.TokenPiece(toks[p])), "position %d", p)
	}
	open, bounded := prefillPair(t, e, toks, 50, sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}, SpanTrail: 20},
		func(s *sdtp.Schedule) { s.SpanTrailSentence = true })
	after := func(live []int32) (n int) {
		for _, p := range live {
			if p >= 56 && p <= 70 {
				n++
			}
		}
		return n
	}
	for p := int32(50); p <= 70; p++ {
		assert.Contains(t, open.LivePositions[1], p, "the open trail")
	}
	for p := int32(50); p <= 55; p++ {
		assert.Contains(t, bounded.LivePositions[1], p, "the sentence up to its full stop")
	}
	assert.Less(t, after(bounded.LivePositions[1]), 15, "the next sentence competes like any other")
}

// chainPrompt is a 400-token prompt of filler sentences (ids 1000–1009,
// 20 tokens each: every run of them is common) holding a chain of
// assignments "V a = 7 8 9." → "V b = V a." → "V c = V b." at 100, 200
// and 300, and a question at 380 that holds the value 7 8 9 only. Dot
// (5) ends sentences. Question attention found the first link (0.9);
// the others score like filler (0.1).
func chainPrompt() (tokens []int32, ends []bool, pos []int32, scores []float32) {
	const dot, v, eq = 5, 6, 4
	tokens, ends, pos, scores = make([]int32, 400), make([]bool, 400), make([]int32, 400), make([]float32, 400)
	for i := range tokens {
		tokens[i], pos[i], scores[i] = int32(1000+i%10), int32(i), 0.1
		if i%20 == 19 {
			tokens[i] = dot
		}
	}
	put := func(at int, toks ...int32) {
		copy(tokens[at:], toks)
		tokens[at-1] = dot // the chained sentence starts a sentence
	}
	put(100, v, 11, 12, eq, 7, 8, 9, dot)
	put(200, v, 21, 22, eq, v, 11, 12, dot)
	put(300, v, 31, 32, eq, v, 21, 22, dot)
	put(380, 50, 51, 7, 8, 9, 52, dot)
	for i, t := range tokens {
		ends[i] = t == dot
	}
	for i := 100; i < 108; i++ {
		scores[i] = 0.9
	}
	return tokens, ends, pos, scores
}

func TestChainEchoesFollowsAChainOfNames(t *testing.T) {
	tokens, ends, pos, scores := chainPrompt()
	chained := sdtp.ChainEchoes(tokens, ends, pos, scores, 3, 2)
	for _, at := range []int{200, 300} {
		for i := at; i < at+8; i++ {
			assert.Equal(t, float32(0.9), chained[i], "link at %d, token %d: reached through the name before it", at, i)
		}
	}
	assert.Equal(t, float32(0.1), chained[190], "filler keeps its score")
	assert.Equal(t, float32(0.1), chained[99], "the sentence before a link is not part of it")

	oneHop := sdtp.ChainEchoes(tokens, ends, pos, scores, 3, 1)
	assert.Equal(t, float32(0.9), oneHop[203])
	assert.Equal(t, float32(0.1), oneHop[303], "the third link is two hops away")
	assert.Equal(t, scores, sdtp.ChainEchoes(tokens, ends, pos, scores, 3, 0), "0 hops: off")

	// A name used more than EchoHopMaxCount times is not a name.
	common := slices.Clone(tokens)
	for _, at := range []int{40, 60, 140} {
		copy(common[at:], []int32{6, 11, 12})
	}
	assert.Equal(t, float32(0.1), sdtp.ChainEchoes(common, ends, pos, scores, 3, 2)[203])

	// At a later stage only some tokens are live: names are read from the
	// prompt's tokens, scores lent to the live ones.
	var livePos []int32
	var liveScores []float32
	for i := 0; i < len(pos); i += 2 {
		livePos, liveScores = append(livePos, pos[i]), append(liveScores, scores[i])
	}
	live := sdtp.ChainEchoes(tokens, ends, livePos, liveScores, 3, 2)
	assert.Equal(t, float32(0.9), live[150], "position 300")
	assert.Equal(t, float32(0.1), live[95], "position 190")

	// A sentence longer than EchoHopMaxSentence is prose: not kept whole.
	long := slices.Clone(ends)
	for i := 180; i < 300; i++ {
		long[i] = false
	}
	assert.Equal(t, float32(0.1), sdtp.ChainEchoes(tokens, long, pos, scores, 3, 2)[203])

	// Prose: the first link's rare runs recur in 20-token sentences of
	// words the question does not hold. One such sentence keeps the hop
	// within len/EchoHopMaxShare tokens (8 + 20 of 50); three take it past
	// (8 + 60), so the hop is not taken.
	require.Equal(t, 8, sdtp.EchoHopMaxShare)
	prose := func(toks []int32, at int, run ...int32) { // the sentence [at, at+19]
		for i := at; i < at+19; i++ {
			toks[i] = int32(2000 + i)
		}
		copy(toks[at+1:], run)
	}
	narrow := slices.Clone(tokens)
	prose(narrow, 40, 12, 4, 7) // a run of "V 11 12 = 7 8 9."
	within := sdtp.ChainEchoes(narrow, ends, pos, scores, 3, 2)
	assert.Equal(t, float32(0.9), within[45], "the prose sentence is a link")
	assert.Equal(t, float32(0.9), within[203])
	wide := slices.Clone(narrow)
	prose(wide, 140, 12, 4, 7)
	prose(wide, 60, 4, 7, 8)
	past := sdtp.ChainEchoes(wide, ends, pos, scores, 3, 2)
	for _, i := range []int{45, 65, 145, 203, 303} {
		assert.Equal(t, float32(0.1), past[i], "token %d: the hop past the budget is not taken, nor any after it", i)
	}
	assert.Equal(t, float32(0.9), past[104], "the first link keeps its score")
}

// Through the engine: a chain of three facts in a 400-token prompt whose
// question names only the first one's value; the scorer finds the value
// alone. With two echo hops the whole chain survives a keep ratio of 0.3.
func TestPrefillEchoHopsKeepAChain(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	dot := fullStop(t, e)
	toks := prompt(400) // ids 300..549; protected: 0..3 and 360..399; the question is 368..399
	links := map[int][]int32{
		100: {560, 571, 572, 561, 567, 568, 569, dot}, // V a = 7 8 9.
		200: {560, 581, 582, 561, 560, 571, 572, dot}, // V b = V a.
		300: {560, 591, 592, 561, 560, 581, 582, dot}, // V c = V b.
		380: {550, 551, 567, 568, 569, 552, dot},      // which hold 7 8 9?
	}
	for at, l := range links {
		toks[at-1] = dot
		copy(toks[at:], l)
	}
	for _, id := range []int32{560, 561, 567, 571, 581, 591} {
		require.False(t, sdtp.EndsSentence(e.TokenPiece(id)), "token %d", id)
	}
	plain, chained := prefillPair(t, e, toks, 105, sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}, SpanEcho: 3},
		func(s *sdtp.Schedule) { s.SpanEchoHops = 2 })
	kept := func(live []int32, at int) (n int) {
		for _, p := range live {
			if int(p) >= at && int(p) < at+8 {
				n++
			}
		}
		return n
	}
	for _, at := range []int{100, 200, 300} {
		assert.Equal(t, 8, kept(chained.LivePositions[1], at), "link at %d kept whole", at)
	}
	assert.Less(t, kept(plain.LivePositions[1], 200)+kept(plain.LivePositions[1], 300), 16, "without hops the later links compete like any text")
}

func TestPrefillKeepsWholeSentencesEchoesFirst(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	toks := questionPrompt(t, e)
	plain, whole := prefillPair(t, e, toks, 105, sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}, SpanEcho: 3},
		func(s *sdtp.Schedule) { s.SpanSentences, s.SpanEchoFirst = true, true })
	assert.Equal(t, 12, keptIn(whole.LivePositions[1], 100, 112), "the boosted token's sentence whole")
	assert.Equal(t, 8, keptIn(whole.LivePositions[1], 200, 208), "the echo's sentence whole")
	assert.Less(t, keptIn(plain.LivePositions[1], 100, 112)+keptIn(plain.LivePositions[1], 200, 208), 20,
		"token by token, both sentences lose words")
}

// A prompt that asks no question (no '?' among its last tokens: a text
// to continue) is pruned token by token even with whole sentences on.
func TestPrefillKeepsWholeSentencesOnlyWhenAsked(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	toks := questionPrompt(t, e)
	require.True(t, sdtp.AsksQuestion(e.TokenPiece, toks))
	toks[385] = fullStop(t, e) // which is 7 8 9.
	require.False(t, sdtp.AsksQuestion(e.TokenPiece, toks))
	plain, whole := prefillPair(t, e, toks, 105, sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.3}},
		func(s *sdtp.Schedule) { s.SpanSentences = true })
	assert.Equal(t, plain.LivePositions, whole.LivePositions)
	assert.Less(t, keptIn(whole.LivePositions[1], 100, 112), 12, "the boosted token's sentence loses words")
}

// questionPrompt is 400 tokens of the tiny vocabulary with three short
// sentences, 100..111, 200..207 and 380..385, the last the question
// "which is 7 8 9?" (within the protected tail 360..399), whose run 7 8 9
// the sentence at 200 states; no other token ends a sentence.
func questionPrompt(t *testing.T, e *bridge.Engine) []int32 {
	t.Helper()
	dot := fullStop(t, e)
	toks := prompt(400) // protected: 0..3 and 360..399; the question is 368..399
	for i, id := range toks {
		if sdtp.EndsSentence(e.TokenPiece(id)) {
			toks[i] = 361 // " are": no sentence ends but ours
		}
	}
	for _, at := range []int{99, 111, 199, 207, 379} {
		toks[at] = dot
	}
	copy(toks[200:], []int32{567, 568, 569})                               // the question's run, stated early
	copy(toks[380:], []int32{550, 567, 568, 569, 552, pieceID(t, e, "?")}) // which is 7 8 9?
	for _, id := range []int32{550, 552, 567, 568, 569} {
		require.False(t, sdtp.EndsSentence(e.TokenPiece(id)), "token %d", id)
	}
	return toks
}

// keptIn counts the positions of live in [from, to).
func keptIn(live []int32, from, to int) (n int) {
	for _, p := range live {
		if int(p) >= from && int(p) < to {
			n++
		}
	}
	return n
}

// A token id outside the vocabulary is an error of the prefill, not a
// crash in llama.cpp's detokenizer (sentence ends read every token's text).
func TestPrefillRefusesATokenOutsideTheVocabulary(t *testing.T) {
	_, e := tinyEngine(t, testmodel.Llama())
	assert.Nil(t, e.TokenPiece(-1))
	assert.Nil(t, e.TokenPiece(1<<20))
	toks := prompt(200)
	toks[50] = 1 << 20
	sched := sdtp.Schedule{Layers: []int{1}, KeepRatios: []float64{0.5}, SpanTrail: 8, SpanTrailSentence: true, SpanEcho: 3, SpanEchoHops: 2}
	_, err := sdtp.Prefill(context.Background(), e, predictor.NewRandom(1), sched, toks, 64)
	assert.ErrorContains(t, err, "token id or position out of range")
}

// fullStop is the id of the tiny vocabulary's "." token.
func fullStop(t *testing.T, e *bridge.Engine) int32 { return pieceID(t, e, ".") }

// pieceID is the id of the tiny vocabulary's token whose text is piece.
func pieceID(t *testing.T, e *bridge.Engine, piece string) int32 {
	t.Helper()
	for id := range int32(e.NVocab()) {
		if string(e.TokenPiece(id)) == piece {
			return id
		}
	}
	t.Fatalf("the tiny vocabulary has no %q", piece)
	return -1
}

// prefillPair prefills toks twice with random scores and 2 at position
// boost: at sched, then at sched as change leaves it. Both must keep the
// same number of tokens.
func prefillPair(t *testing.T, e *bridge.Engine, toks []int32, boost int32, sched sdtp.Schedule, change func(*sdtp.Schedule)) (before, after sdtp.PrefillResult) {
	t.Helper()
	before, err := sdtp.Prefill(context.Background(), e, boosted{predictor.NewRandom(5), boost}, sched, toks, 64)
	require.NoError(t, err)
	change(&sched)
	after, err = sdtp.Prefill(context.Background(), e, boosted{predictor.NewRandom(5), boost}, sched, toks, 64)
	require.NoError(t, err)
	assert.Equal(t, before.KeptPerStage, after.KeptPerStage, "the same budget")
	return before, after
}

func TestEchoesFirstRanksEchoesAboveTheRest(t *testing.T) {
	tokens, pos, scores := echoPrompt()
	scores[52] = 0.05 // every copy of the asked run scores below filler now
	first := sdtp.EchoesFirst(tokens, pos, scores, 3)
	for _, p := range []int{22, 52, 72} {
		assert.Greater(t, first[p], slices.Max(scores[4:90]), "position %d ends the asked run 7 8 9", p)
	}
	assert.Greater(t, first[22], first[52], "the order among echoes stays")
	assert.Equal(t, float32(5), first[95], "a protected token keeps its score")
	for _, p := range []int{20, 21, 50, 51, 53, 60} {
		assert.Equal(t, scores[p], first[p], "position %d ends no asked 3-token run", p)
	}
	assert.Equal(t, scores, sdtp.EchoesFirst(tokens, pos, scores, 0), "no echo: unchanged")

	// Through the trail, each copy keeps its value at a cut that keeps
	// few tokens beyond the protected ones.
	kept, err := sdtp.Select(pos, sdtp.PoolSpans(pos, first, nil, 100, 0, 5), 100, 0.35)
	require.NoError(t, err)
	for _, p := range []int{23, 27, 53, 57, 73, 77} {
		assert.Contains(t, kept, p)
	}
	plain, err := sdtp.Select(pos, sdtp.PoolSpans(pos, sdtp.ShareEchoes(tokens, pos, scores, 3), nil, 100, 0, 5), 100, 0.35)
	require.NoError(t, err)
	for _, p := range []int{27, 57, 77} {
		assert.NotContains(t, plain, p, "shared but weak, the copies' values go")
	}
}

func TestPoolSentencesKeepsASentenceWhole(t *testing.T) {
	// 200 tokens (protected: 0..3 and 180..199); sentences end at 19, 39,
	// …; the sentence 40..59 holds one high score at 45, the sentence
	// 100..179 is 80 tokens long (prose: no full stop at 119..159).
	const n = 200
	ends := make([]bool, n)
	for e := 19; e < n; e += 20 {
		ends[e] = e < 100 || e >= 160
	}
	pos, scores := make([]int32, n), make([]float32, n)
	for i := range pos {
		pos[i], scores[i] = int32(i), 0.1+0.001*float32(i%13)
	}
	scores[45], scores[110], scores[2], scores[185] = 0.9, 0.8, 7, 9
	pooled := sdtp.PoolSentences(ends, pos, scores)
	for p := 40; p < 60; p++ {
		assert.Equal(t, float32(0.9), pooled[p], "position %d is in the sentence of 45", p)
	}
	assert.Equal(t, scores[111], pooled[111], "an 80-token sentence is prose: unchanged")
	assert.Equal(t, float32(7), pooled[2], "protected tokens keep their scores")
	assert.Equal(t, pooled[5], pooled[19], "the first sentence takes its best unprotected score")
	assert.NotEqual(t, float32(7), pooled[5], "and not the protected one's")
	assert.Equal(t, float32(9), pooled[185])
	assert.Equal(t, scores, sdtp.PoolSentences(nil, pos, scores), "no sentence ends: unchanged")

	kept, err := sdtp.Select(pos, pooled, n, 0.3)
	require.NoError(t, err)
	for p := 40; p < 60; p++ {
		assert.Contains(t, kept, p, "the sentence survives whole")
	}
	tokenwise, err := sdtp.Select(pos, scores, n, 0.3)
	require.NoError(t, err)
	assert.NotContains(t, tokenwise, 41, "scored token by token, the sentence loses words")

	// A later stage's live subset: the sentence of 45 keeps its pruned
	// tokens' places, and its end (59) is pruned, so it runs on to 59.
	livePos := []int32{0, 42, 45, 50, 61, 62, 190}
	live := []float32{7, 0.1, 0.9, 0.2, 0.3, 0.1, 9}
	assert.Equal(t, []float32{7, 0.9, 0.9, 0.9, 0.3, 0.3, 9}, sdtp.PoolSentences(ends, livePos, live))
}
