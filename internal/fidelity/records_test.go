package fidelity

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordsResume(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRecords(dir)
	require.NoError(t, err)
	key := RecordKey("model-a", "sdtp layers [2 4] keep [0.9 0.9]", 16, []int32{1, 2, 3})
	rec := Record{Key: key, Model: "model-a", Task: TaskMultiKey, Length: 2048, Index: 3, Mode: "sdtp", Depth: 0.4,
		Output: "1234567", Verdict: Verdict{Correct: true}, Seconds: 1.5}
	require.NoError(t, r.Add(rec))
	require.NoError(t, r.Add(Record{Key: "other", Model: "model-a", Task: TaskMultiKey, Length: 2048, Mode: "dense"}))

	again, err := OpenRecords(dir) // a later run
	require.NoError(t, err)
	assert.Equal(t, 2, again.Len())
	got, ok := again.Get(key)
	require.True(t, ok)
	assert.Equal(t, rec, got)
	assert.FileExists(t, filepath.Join(dir, "model-a", "multi-key-2048.jsonl"))

	// What the answer depends on is in the key.
	assert.NotEqual(t, key, RecordKey("model-b", "sdtp layers [2 4] keep [0.9 0.9]", 16, []int32{1, 2, 3}))
	assert.NotEqual(t, key, RecordKey("model-a", "attention layers [2 4] keep [0.9 0.9]", 16, []int32{1, 2, 3}))
	assert.NotEqual(t, key, RecordKey("model-a", "sdtp layers [2 4] keep [0.9 0.9]", 32, []int32{1, 2, 3}))
	assert.NotEqual(t, key, RecordKey("model-a", "sdtp layers [2 4] keep [0.9 0.9]", 16, []int32{1, 2, 4}))

	// A damaged cache is an error, not silently dropped.
	f, err := os.OpenFile(filepath.Join(dir, "model-a", "multi-key-2048.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("{not json\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = OpenRecords(dir)
	assert.ErrorContains(t, err, "multi-key-2048.jsonl:3")
}

// NeedlesKept counts, per needle, the tokens no stage dropped.
func TestNeedlesKept(t *testing.T) {
	dropped := []int{0, 0, 1, 0, 2, 2, 0, 0, 0, 1}
	got, err := NeedlesKept([]Span{{Start: 0, Len: 4}, {Start: 4, Len: 2}, {Start: 6, Len: 3}}, dropped)
	require.NoError(t, err)
	assert.Equal(t, []float64{0.75, 0, 1}, got)
	_, err = NeedlesKept([]Span{{Start: 8, Len: 3}}, dropped)
	assert.ErrorContains(t, err, "outside the 10 prefilled tokens")
	_, err = NeedlesKept([]Span{{Start: 2, Len: 0}}, dropped)
	assert.Error(t, err, "an empty needle is no needle")
}

// An answer made under a smaller budget stands for a larger one only when
// it ended before its budget: greedy decoding would stop there again. One
// cut by its budget is answered again.
func TestRecordsAnswerUnderLargerBudget(t *testing.T) {
	r, err := OpenRecords(t.TempDir())
	require.NoError(t, err)
	prompt := []int32{1, 2, 3}
	keyFor := func(model string) func(int) string {
		return func(budget int) string { return RecordKey(model, "dense", budget, prompt) }
	}
	ended, cut := keyFor("ended"), keyFor("cut")
	require.NoError(t, r.Add(Record{Key: ended(16), Model: "m", Task: "t", Length: 3, Output: "42", AnswerTokens: 16, EndedEarly: true}))
	require.NoError(t, r.Add(Record{Key: cut(16), Model: "m", Task: "t", Length: 3, Output: "The answer is 4", AnswerTokens: 16}))

	rec, ok := r.Answer(ended, 48, 16)
	require.True(t, ok, "ended at 16 tokens: the same answer under 48")
	assert.Equal(t, "42", rec.Output)
	_, ok = r.Answer(cut, 48, 16)
	assert.False(t, ok, "cut at its budget of 16: it may go on under 48")
	_, ok = r.Answer(ended, 48)
	assert.False(t, ok, "no smaller budget given, no fallback")
	_, ok = r.Answer(ended, 8, 16)
	assert.False(t, ok, "a larger budget's answer never stands for a smaller one")
	rec, ok = r.Answer(cut, 16, 16)
	require.True(t, ok, "the exact budget")
	assert.Equal(t, "The answer is 4", rec.Output)
}
