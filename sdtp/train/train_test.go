package train

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/sdtp"
)

func TestRankCorrelations(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5}
	assert.InDelta(t, 1, Spearman(a, []float32{10, 20, 30, 40, 50}), 1e-12)
	assert.InDelta(t, -1, Spearman(a, []float32{5, 4, 3, 2, 1}), 1e-12)
	assert.InDelta(t, 1, Kendall(a, []float32{1, 4, 9, 16, 25}), 1e-12)
	// One swapped pair of 10: τ = (9 − 1) / 10.
	assert.InDelta(t, 0.8, Kendall(a, []float32{2, 1, 3, 4, 5}), 1e-12)
	assert.Equal(t, []float64{0.5, 0.5, 2}, ranks([]float32{7, 7, 9}), "ties share their mean rank")
	assert.Equal(t, []float32{-1, 0, 1}, rankNormalize([]float32{-5, 0.1, 100}))
}

// synthetic builds sequences whose importance is a nonlinear function of
// the hidden state plus noise, with a few huge dimensions as in real
// residual streams.
func synthetic(rng *rand.Rand, n, m, d int) []Example {
	w := make([]float64, d)
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	var out []Example
	for range n {
		var ex Example
		for range m {
			var dot float64
			for j := range d {
				x := rng.NormFloat64()
				if j < 2 {
					x = 300 + 50*x // massive activations
				}
				ex.Input = append(ex.Input, float32(x))
				if j >= 2 {
					dot += w[j] * x
				}
			}
			ex.Importance = append(ex.Importance, float32(math.Abs(dot)+0.3*rng.NormFloat64()))
		}
		out = append(out, ex)
	}
	return out
}

func TestTrainLearnsARanking(t *testing.T) {
	d := 16
	all := synthetic(rand.New(rand.NewPCG(3, 4)), 48, 64, d)
	trainSet, val := all[:40], all[40:]
	cfg := Config{Hidden: 16, Epochs: 30, LR: 3e-3, Batch: 32, Pairs: 4, RankWeight: 1, Seed: 1}
	res, err := Train(trainSet, val, d, 0, cfg, nil)
	require.NoError(t, err)
	t.Logf("held-out Spearman %.3f Kendall %.3f (best epoch %d)", res.ValSpearman, res.ValKendall, res.BestEpoch)
	assert.Greater(t, res.ValSpearman, 0.8)
	assert.Greater(t, res.History[len(res.History)-1].ValSpearman, res.History[0].ValSpearman-0.05)

	// The exported predictor (standardization folded in, keep − drop) ranks
	// exactly as the trained one.
	sp, kt := Evaluate(res.MLP, val)
	assert.InDelta(t, res.ValSpearman, sp, 1e-3)
	assert.InDelta(t, res.ValKendall, kt, 1e-3)
	require.NoError(t, res.MLP.Validate())

	// The same inputs read as a hidden state followed by context features:
	// the exported predictor splits them and still ranks as trained.
	k := len(sdtp.ContextFeatures)
	withContext, err := Train(trainSet, val, d-k, k, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, d-k, withContext.MLP.D)
	assert.Equal(t, k, withContext.MLP.Context)
	sp, _ = Evaluate(withContext.MLP, val)
	assert.InDelta(t, withContext.ValSpearman, sp, 1e-3)

	again, err := Train(trainSet, val, d, 0, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, res.MLP, again.MLP, "same seed, same predictor")

	_, err = Train(nil, val, d, 0, cfg, nil)
	assert.Error(t, err)
	_, err = Train(trainSet, val, d, 0, Config{}, nil)
	assert.Error(t, err)
}

func TestExamplesSkipProtectedTokens(t *testing.T) {
	n, d := 40, 2
	rec := Record{Tokens: make([]int32, n), Saliency: [][]float32{make([]float32, n)}, Hidden: [][]uint16{toBF16(make([]float32, n*d))},
		PrunedPos: [][]int32{{0, 1, 2, 3, 10, 11, 39}}, PrunedHidden: [][]uint16{toBF16(make([]float32, 7*d))}}
	for i := range n {
		rec.Saliency[0][i] = float32(-i)
	}
	dense := Examples([]Record{rec}, 0, d, false, false, TargetAbs)
	require.Len(t, dense, 1)
	assert.Len(t, dense[0].Importance, n-4-4, "first 4 and last 10% (4 of 40) are protected")
	assert.Equal(t, float32(4), dense[0].Importance[0])
	pruned := Examples([]Record{rec}, 0, d, true, true, TargetSigned)
	require.Len(t, pruned, 1)
	assert.Equal(t, []float32{10, 11}, pruned[0].Importance, "signed importance is −saliency")
	assert.Len(t, pruned[0].Input, 2*(d+len(sdtp.ContextFeatures)), "each row: hidden state, then context features")
	two := Record{Tokens: make([]int32, 2), Saliency: [][]float32{{1, -3}, {2, 2}}}
	assert.Equal(t, []float32{0.25 + 0.5, 0.75 + 0.5}, TargetCumulative.importance(two, 0), "each stage's share, summed over later stages")
	assert.Equal(t, []float32{0.5, 0.5}, TargetCumulative.importance(two, 1))
	_, err := ParseTarget("both")
	assert.Error(t, err)
}

// |sal| = ‖x‖·‖∂L/∂x‖·|cos|: a record whose gradient norms and angles both
// rise along the sequence, with streams of norm 3.
func TestGradientFactors(t *testing.T) {
	n, d := 40, 3
	x := make([]float32, n*d)
	rec := Record{Tokens: make([]int32, n), Saliency: [][]float32{make([]float32, n)}, GradNorm: [][]float32{make([]float32, n)}}
	var want []float64
	for i := range n {
		x[i*d] = 3
		gNorm, cos := 0.5+float64(i), 0.1+0.02*float64(i)
		rec.Saliency[0][i] = float32(-3 * gNorm * cos)
		rec.GradNorm[0][i] = float32(gNorm)
		if !sdtp.Protected(i, n) {
			want = append(want, cos)
		}
	}
	rec.Hidden = [][]uint16{toBF16(x)}
	assert.Equal(t, rec.GradNorm[0], TargetGradNorm.importance(rec, 0))
	align := TargetAlignment.importance(rec, 0)
	for i := range n {
		assert.InDelta(t, 0.1+0.02*float64(i), align[i], 1e-6, "token %d", i)
	}
	dec := Decompose([]Record{rec}, 0)
	assert.InDelta(t, 1, dec.WithGradNorm, 1e-9)
	assert.InDelta(t, 1, dec.WithAlignment, 1e-9)
	var mean float64
	for _, c := range want {
		mean += c / float64(len(want))
	}
	assert.InDelta(t, mean, dec.MeanAlignment, 1e-6, "over the competing tokens only")
	for _, name := range []string{"grad-norm", "alignment"} {
		_, err := ParseTarget(name)
		assert.NoError(t, err)
	}
}

// byteTok is a tokenizer of one token per byte, BOS = 1 when asked for.
type byteTok struct{}

func (byteTok) Tokenize(s string, addSpecial, _ bool) ([]int32, error) {
	var ids []int32
	if addSpecial {
		ids = append(ids, 1)
	}
	for _, c := range []byte(s) {
		ids = append(ids, int32(c))
	}
	return ids, nil
}

func ids(s string) []int32 { out, _ := byteTok{}.Tokenize(s, false, false); return out }

func TestLoadSequences(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "d.jsonl")
	require.NoError(t, os.WriteFile(jsonl, []byte(`{"instruction":"abcdefghij","context":"","response":"klmnopqrst"}
{"prompt":"short","answer":"x"}

{"text":"0123456789012345678901234567890123456789"}
`), 0o644))
	o := DataOptions{MaxLen: 30, MinLen: 20, To: 1}
	seqs, err := LoadSequences(jsonl, byteTok{}, o)
	require.NoError(t, err)
	require.Len(t, seqs, 2, "the short record is skipped")
	assert.Len(t, seqs[0].Prompt, 23, "BOS + instruction + two newlines + response")
	assert.Empty(t, seqs[0].Answer, "without Answers a record is one text")
	assert.Len(t, seqs[1].Prompt, 30, "truncated to max-len")

	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("{\"instruction\": 1}\n"), 0o644))
	_, err = LoadSequences(bad, byteTok{}, o)
	assert.ErrorContains(t, err, "bad.jsonl:1")

	text := filepath.Join(dir, "t.txt")
	line := "abcdefghijklmnopqrstuvwxyz\n"
	require.NoError(t, os.WriteFile(text, []byte(line+line+line+line), 0o644))
	seqs, err = LoadSequences(text, byteTok{}, o)
	require.NoError(t, err)
	require.Len(t, seqs, 4, "108 bytes in windows of 29 (+ BOS): 29, 29, 29 and 21 >= min-len")
	for _, s := range seqs {
		assert.Equal(t, int32(1), s.Prompt[0], "every window starts with BOS")
	}
	o.To = 0.5
	seqs, err = LoadSequences(text, byteTok{}, o)
	require.NoError(t, err)
	assert.Len(t, seqs, 2, "the first half: 54 bytes, windows of 29 and 25")
	four := []byte(line + line + line + line)
	assert.Equal(t, []byte(line+line), Portion(four, 0.5, 1), "a cut at a line start stays")
	assert.Equal(t, []byte(line+line), Portion(four, 0.4, 1), "a cut inside a line moves to the next")
	assert.Equal(t, four, Portion(four, 0, 1))
	_, err = LoadSequences(filepath.Join(dir, "missing.txt"), byteTok{}, o)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// Records with an answer become prompt + answer: the prompt formatted as
// a completion (BOS, fields, newline) or by the chat template, the answer
// without BOS and capped.
func TestLoadSequencesWithAnswers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qa.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"instruction":"Name the colour of the sky","context":"On a clear day at noon.","response":"It is blue, usually."}
{"prompt":"A prompt far longer than the seventy tokens allowed here, more than seventy, so it is skipped whole","answer":"no"}
{"text":"plain text without an answer, long enough to keep"}
`), 0o644))
	o := DataOptions{MaxLen: 70, MinLen: 20, To: 1, Answers: true, MaxAnswer: 8}
	seqs, err := LoadSequences(path, byteTok{}, o)
	require.NoError(t, err)
	require.Len(t, seqs, 2, "the over-long prompt is skipped, not cut")
	assert.Equal(t, append([]int32{1}, ids("Name the colour of the sky\n\nOn a clear day at noon.\n")...), seqs[0].Prompt)
	assert.Equal(t, ids("It is bl"), seqs[0].Answer, "the answer's first MaxAnswer tokens, no BOS")
	assert.Empty(t, seqs[1].Answer)

	o.Chat = func(user string) (string, error) { return "<u>" + user + "</u><a>", nil }
	seqs, err = LoadSequences(path, byteTok{}, o)
	require.NoError(t, err)
	assert.Equal(t, ids("<u>Name the colour of the sky\n\nOn a clear day at noon.</u><a>"), seqs[0].Prompt,
		"the template's text, no BOS added")
	assert.Equal(t, ids("It is bl"), seqs[0].Answer)
}

func TestSplitIsSeededAndDisjoint(t *testing.T) {
	var seqs [][]int32
	for i := range 10 {
		seqs = append(seqs, []int32{int32(i)})
	}
	tr, val := Split(seqs, 6, 3, 9)
	tr2, val2 := Split(seqs, 6, 3, 9)
	assert.Equal(t, tr, tr2)
	assert.Equal(t, val, val2)
	seen := map[int32]bool{}
	for _, s := range append(tr, val...) {
		assert.False(t, seen[s[0]])
		seen[s[0]] = true
	}
	tr, val = Split(seqs, 100, 100, 9)
	assert.Len(t, val, 5, "at most half held out")
	assert.Len(t, tr, 5)
}

func TestCacheRoundTrip(t *testing.T) {
	c := Cache{Dir: filepath.Join(t.TempDir(), "cal")}
	rec := Record{Tokens: []int32{1, 2, 3}, Loss: 2.5, Saliency: [][]float32{{0.1, -0.2, 0.3}}, Hidden: [][]uint16{{1, 2, 3}}}
	plain := Sequence{Prompt: rec.Tokens}
	_, ok := c.Load(plain)
	assert.False(t, ok)
	require.NoError(t, c.Store(rec))
	got, ok := c.Load(plain)
	require.True(t, ok)
	assert.Equal(t, rec, got)
	_, ok = c.Load(Sequence{Prompt: []int32{1, 2, 4}})
	assert.False(t, ok, "other tokens, other record")
	// A plain sequence's file is named by its tokens alone, as before
	// answers: caches of earlier calibrations stay valid.
	h := sha256.New()
	require.NoError(t, binary.Write(h, binary.LittleEndian, rec.Tokens))
	assert.FileExists(t, filepath.Join(c.Dir, "seq-"+hex.EncodeToString(h.Sum(nil))[:16]+".gob"))

	withAnswer := Sequence{Prompt: rec.Tokens, Answer: []int32{7, 8}}
	_, ok = c.Load(withAnswer)
	assert.False(t, ok, "the same prompt with an answer is another record")
	rec.Answer = withAnswer.Answer
	require.NoError(t, c.Store(rec))
	got, ok = c.Load(withAnswer)
	require.True(t, ok)
	assert.Equal(t, rec, got)
	files, err := filepath.Glob(filepath.Join(c.Dir, "*"))
	require.NoError(t, err)
	assert.Len(t, files, 2, "no temporary file left behind")
}
