package main

import (
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

// --chat: the scripted conversation in each mode, interleaved; turns 2–4
// prefill only their own tokens in every mode.
func TestBenchChat(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "qwen2-chat.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Qwen2Chat()))
	doc := filepath.Join(dir, "doc.txt")
	require.NoError(t, os.WriteFile(doc, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 30)), 0o644))

	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"--chat", "--model", model, "--doc", doc, "--modes", "llamacpp,sdtp", "--repeat", "1",
		"--decode-tokens", "4", "--ignore-eos", "--threads", "2", "--json"}, &stdout, &stderr), stderr.String())
	var rep chatReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep))
	require.Len(t, rep.Turns, 8, "4 turns × 2 modes")
	prev := map[string]int{} // mode -> the previous turn's prompt
	for _, r := range rep.Turns {
		assert.Equal(t, r.PromptTokens-r.ReusedTokens, r.PrefilledTokens)
		assert.Positive(t, r.PrefillMS)
		assert.Positive(t, r.PrefillVsLlamaCpp)
		assert.Positive(t, r.TurnVsLlamaCpp)
		assert.Equal(t, 4, r.GeneratedTokens, "--ignore-eos: every answer is --decode-tokens long")
		assert.Positive(t, r.DecodeTokS)
		if r.Turn == 1 {
			assert.Greater(t, r.PromptTokens, 300, "the document")
		} else {
			assert.GreaterOrEqual(t, r.ReusedTokens, prev[r.Mode], "turn %d in %s reuses all of turn %d", r.Turn, r.Mode, r.Turn-1)
		}
		prev[r.Mode] = r.PromptTokens
	}
	sdtpRow := rep.Turns[1]
	assert.Equal(t, "sdtp", sdtpRow.Mode)
	assert.Equal(t, "attention-acc", sdtpRow.Scorer, "no predictors for the tiny model: says what ran")
	assert.Less(t, sdtpRow.KeptTokens, sdtpRow.PrefilledTokens)

	stdout.Reset()
	require.NoError(t, run([]string{"--chat", "--model", model, "--doc", doc, "--modes", "llamacpp,sdtp", "--repeat", "1",
		"--decode-tokens", "2", "--threads", "2", "--questions", "what?", "--questions", "why?"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "sdtp (attention-acc)")
	assert.Equal(t, 1+2*2, strings.Count(stdout.String(), "\n"), "a header and 2 turns × 2 modes")

	assert.ErrorContains(t, run([]string{"--chat", "--model", model, "--doc", doc, "--modes", "sdtp-gguf"}, &stdout, &stderr), "bench-only")
	assert.ErrorContains(t, run([]string{"--model", model, "--ignore-eos"}, &stdout, &stderr), "--ignore-eos applies to chat runs")
	assert.ErrorContains(t, run([]string{"--chat", "--model", model, "--prompt-tokens", "64"}, &stdout, &stderr), "--prompt-tokens applies to speed runs")
}
