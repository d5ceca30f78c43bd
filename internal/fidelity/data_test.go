package fidelity

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The loaders stop at the development split: a file whose held-out part
// does not even parse loads, and nothing past the split comes back.
func TestSQuADDevSplitOnly(t *testing.T) {
	var arts []string
	for i := range SQuADDevArticles {
		a := map[string]any{"title": fmt.Sprint("article ", i), "paragraphs": []any{map[string]any{
			"context": fmt.Sprintf("Paragraph of article %d.", i),
			"qas": []any{
				map[string]any{"id": fmt.Sprint("q", i), "question": "Which article?", "is_impossible": false,
					"answers": []any{map[string]any{"text": fmt.Sprint(i)}, map[string]any{"text": fmt.Sprint("article ", i)}}},
				map[string]any{"id": fmt.Sprint("impossible", i), "question": "Unanswerable?", "is_impossible": true, "answers": []any{}},
			},
		}}}
		raw, err := json.Marshal(a)
		require.NoError(t, err)
		arts = append(arts, string(raw))
	}
	held := `{"title": "held out", "paragraphs": [ this is not JSON and must never be parsed`
	path := filepath.Join(t.TempDir(), "squad.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"version": "v2.0", "data": [`+strings.Join(arts, ",")+","+held), 0o644))
	items, err := LoadSQuAD(path)
	require.NoError(t, err)
	require.Len(t, items, SQuADDevArticles, "one answerable question per dev article; impossible ones skipped")
	for i, it := range items {
		assert.Equal(t, fmt.Sprint("q", i), it.ID)
		assert.Equal(t, []string{fmt.Sprint(i), fmt.Sprint("article ", i)}, it.Answers)
		assert.Equal(t, []Doc{{Text: fmt.Sprintf("Paragraph of article %d.", i)}}, it.Gold)
	}
}

func TestHotpotDevSplitOnly(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range HotpotDevRecords {
		r := map[string]any{"_id": fmt.Sprint("r", i), "question": "Q?", "answer": fmt.Sprint("answer ", i),
			"supporting_facts": []any{[]any{"Gold A", 0}, []any{"Gold B", 1}},
			"context": []any{
				[]any{"Other", []string{"Not this one."}},
				[]any{"Gold A", []string{"First.", " Second."}},
				[]any{"Gold B", []string{"Third."}},
			}}
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		b.Write(raw)
		b.WriteString(",")
	}
	b.WriteString(`{"_id": "held out", not JSON`)
	path := filepath.Join(t.TempDir(), "hotpotqa.json")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	items, err := LoadHotpot(path)
	require.NoError(t, err)
	require.Len(t, items, HotpotDevRecords)
	last := items[len(items)-1]
	assert.Equal(t, fmt.Sprint("r", HotpotDevRecords-1), last.ID)
	assert.Equal(t, []Doc{{"Gold A", "First. Second."}, {"Gold B", "Third."}}, last.Gold)
	assert.Equal(t, []Doc{{"Other", "Not this one."}}, last.Distractors)
}

func TestLoadHaystack(t *testing.T) {
	dir := t.TempDir()
	text := strings.Repeat("One sentence here. ", 200)
	js := filepath.Join(dir, "essays.json")
	raw, _ := json.Marshal(map[string]string{"text": text})
	require.NoError(t, os.WriteFile(js, raw, 0o644))
	got, err := LoadHaystack(js)
	require.NoError(t, err)
	assert.Equal(t, text, got)
	plain := filepath.Join(dir, "wiki.raw")
	require.NoError(t, os.WriteFile(plain, []byte(text), 0o644))
	got, err = LoadHaystack(plain)
	require.NoError(t, err)
	assert.Equal(t, text, got)
	require.NoError(t, os.WriteFile(plain, []byte("too short"), 0o644))
	_, err = LoadHaystack(plain)
	assert.Error(t, err)
}
