package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

// rareCharacters are spelled by byte-fallback tokens on Gemma and on the tiny
// test model: U+13000, U+2000B, U+1F756.
const rareCharacters = "\U00013000 \U0002000B \U0001F756"

// Both views style whole characters: a character spelled by four byte tokens
// dropped at different stages is one span, in the earliest stage's colour,
// and the output is valid UTF-8.
func TestExplainKeepsCharactersWhole(t *testing.T) {
	st := &llama.SDTPStats{
		Mode:         "random",
		Schedule:     sdtp.Schedule{Layers: []int{2, 4, 6}, KeepRatios: []float64{0.5, 0.5, 0.5}},
		KeptPerStage: []int{9, 5, 3},
		Pieces:       []string{"", "Sign", " \xf0", "\x93", "\x80", "\x80", "\xf0\xa0", "\x80\x8b", "."},
		DroppedAt:    []int{0, 0, 2, 1, 0, 3, 3, 3, 0},
	}
	var ansi, page bytes.Buffer
	explainANSI(&ansi, st)
	require.NoError(t, explainHTML(&page, st))
	assert.True(t, utf8.Valid(ansi.Bytes()), "%q", ansi.String())
	assert.True(t, utf8.Valid(page.Bytes()))

	assert.Contains(t, ansi.String(), "Sign\x1b[38;5;236m \U00013000\x1b[0m\x1b[38;5;245m\U0002000B\x1b[0m.")
	assert.Contains(t, page.String(), `<span class="s1" title="pruned at stage 1 (before layer 2); 4 tokens, by stage that dropped each: 2, 1, kept, 3"> `+"\U00013000</span>")
	assert.Contains(t, page.String(), `<span class="s3" title="pruned at stage 3 (before layer 6); 2 tokens, by stage that dropped each: 3, 3">`+"\U0002000B</span>")
	assert.Equal(t, 5, strings.Count(page.String(), "<span "), "one span per character group")
}

// End to end on the tiny model, whose tokenizer also falls back to bytes.
func TestRunExplainRareCharacters(t *testing.T) {
	assertExplainValid(t, tinyModel(t))
}

// assertExplainValid prunes a prompt full of byte-fallback characters with
// model and checks that --explain and --explain-html show each one whole.
func assertExplainValid(t *testing.T, model string) {
	t.Helper()
	prompt := strings.Repeat("the cat saw "+rareCharacters+" and ran. ", 12)
	page := filepath.Join(t.TempDir(), "explain.html")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-m", model, "-p", prompt, "-n", "1", "--temp", "0", "-t", "2", "-c", "1024", "--mode", "random",
		"--keep-ratio", "0.5", "--explain", "--explain-html", page}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	html, err := os.ReadFile(page)
	require.NoError(t, err)
	assert.True(t, utf8.Valid(stderr.Bytes()), "--explain output is not valid UTF-8")
	assert.True(t, utf8.Valid(html), "--explain-html page is not valid UTF-8")
	// (Checks that print no page: on failure, a whole page is unreadable.)
	assert.True(t, regexp.MustCompile(`class="s\d+" title="pruned at stage \d+ \(before layer \d+\); [2-4] tokens`).Match(html),
		"no pruned character spelled by several tokens")
	for _, r := range strings.Fields(rareCharacters) {
		assert.True(t, strings.Contains(stderr.String(), r), "--explain lacks %q", r)
		assert.True(t, strings.Contains(string(html), r), "--explain-html lacks %q", r)
	}
}
