package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

func chatModel(t *testing.T) string {
	t.Helper()
	model := filepath.Join(t.TempDir(), "qwen2-chat.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Qwen2Chat()))
	return model
}

func writeDoc(t *testing.T) string {
	t.Helper()
	doc := filepath.Join(t.TempDir(), "doc.txt")
	require.NoError(t, os.WriteFile(doc, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 30)), 0o644))
	return doc
}

// --doc asks -p about the document through the chat template, prunes the
// prefill and prints the one-line summary to stderr; --json carries the
// kept tokens, FLOP ratio, prefill time and the scorer.
func TestRunDocQuestion(t *testing.T) {
	model, doc := chatModel(t), writeDoc(t)
	var out, stderr bytes.Buffer
	args := []string{"-m", model, "--doc", doc, "-p", "what does the fox do?", "-n", "6", "--temp", "0", "-t", "2", "-c", "1024", "--mode", "attention"}
	require.NoError(t, run(args, &out, &stderr), stderr.String())
	assert.Regexp(t, `prefill \d+ tokens in [0-9.]+ s, \d+% pruned, [0-9.]+× fewer FLOPs \(scorer attention\)`, stderr.String())

	out.Reset()
	require.NoError(t, run(append(args, "--json"), &out, &stderr))
	var r report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	assert.Greater(t, r.PromptTokens, 300, "the document is in the prompt")
	assert.Positive(t, r.KeptTokens)
	assert.Less(t, r.KeptTokens, r.PromptTokens, "pruned")
	assert.Greater(t, r.FLOPRatio, 1.2)
	assert.Positive(t, r.PrefillMS)
	assert.Equal(t, "attention", r.Scorer)

	base := filepath.Join(t.TempDir(), "llama.gguf")
	require.NoError(t, testmodel.Write(base, testmodel.Llama())) // no chat template
	err := run([]string{"-m", base, "--doc", doc, "-p", "x"}, &out, &stderr)
	assert.ErrorContains(t, err, "--doc needs an instruct model")
	assert.ErrorContains(t, run([]string{"-m", model, "--doc", doc}, &out, &stderr), "--doc needs the question")
	assert.ErrorContains(t, run([]string{"-m", model, "--doc", filepath.Join(t.TempDir(), "none"), "-p", "x"}, &out, &stderr), "--doc")
}

// --chat reads one message per line; turn 2 prefills only its own tokens;
// /stats and /reset act on the conversation (--doc goes with the first
// message after a reset too, so its cache is reused).
func TestRunChatFromStdin(t *testing.T) {
	model, doc := chatModel(t), writeDoc(t)
	stdin = strings.NewReader("what does the fox do?\n/stats\nand the dog?\n/reset\n\nhello\n/bogus\n")
	t.Cleanup(func() { stdin = os.Stdin })
	var out, stderr bytes.Buffer
	require.NoError(t, run([]string{"-m", model, "--chat", "--doc", doc, "--system", "Be brief.", "-n", "4", "--temp", "0", "-t", "2",
		"-c", "2048", "--mode", "attention", "--json"}, &out, &stderr), stderr.String())
	var turns []report
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r report
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		turns = append(turns, r)
	}
	require.Len(t, turns, 3)
	assert.Greater(t, turns[0].PromptTokens, 300, "the document goes with the first message")
	assert.GreaterOrEqual(t, turns[1].ReusedTokens, turns[0].PromptTokens, "turn 2 reuses turn 1")
	assert.Equal(t, turns[1].PromptTokens-turns[1].ReusedTokens, turns[1].KeptPerStage[0], "and prefills only its own tokens")
	assert.Less(t, turns[2].PromptTokens, turns[1].PromptTokens, "after /reset: a new conversation on the document")
	assert.Greater(t, turns[2].ReusedTokens, 300, "whose document is still cached")
	assert.Contains(t, stderr.String(), "prefill ", "/stats")
	assert.Contains(t, stderr.String(), "(conversation reset)")
	assert.Contains(t, stderr.String(), "unknown command /bogus")

	assert.ErrorContains(t, run([]string{"-m", model, "--chat", "-p", "x"}, &out, &stderr), "stdin")
	assert.ErrorContains(t, run([]string{"-m", model, "--chat", "--explain"}, &out, &stderr), "do not apply to --chat")
}
