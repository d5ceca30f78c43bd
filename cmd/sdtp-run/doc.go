package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/go-sdtp/sdtp/llama"
)

// docMessage is the user message of --doc: the document file and the
// question (-p), the question last so that it sits in the prompt's
// protected tail and pruning thins the document.
func docMessage(c config) (string, error) {
	doc, err := os.ReadFile(c.doc)
	if err != nil {
		return "", fmt.Errorf("--doc: %w", err)
	}
	return llama.DocumentQuestion(string(doc), c.prompt), nil
}

// opening is the conversation's first messages: --system when given.
func opening(c config) []llama.ChatMessage {
	if c.system == nil {
		return nil
	}
	return []llama.ChatMessage{{Role: "system", Content: *c.system}}
}

// templateErr explains a model without a chat template to the user of
// an option that needs one.
func templateErr(c config, option string, err error) error {
	if errors.Is(err, llama.ErrNoChatTemplate) {
		hint := option + " needs an instruct model (e.g. -m qwen2.5-coder-0.5b-instruct)"
		if option == "--chat-template" {
			hint = "it is a base model, prompt it without --chat-template"
		}
		return fmt.Errorf("%s: %s: %w; %s", option, c.model, err, hint)
	}
	return fmt.Errorf("%s: %w", option, err)
}

// prefillLine is the one-line summary of a prefill that --doc prints to
// stderr and --chat's /stats shows: the tokens prefilled (with the ones
// reused from the cache), the time, the share of them dropped before the
// last layer, and the FLOP ratio vs a dense prefill of the same tokens.
func prefillLine(res llama.Result) string {
	n := res.PromptTokens - res.ReusedTokens
	line := fmt.Sprintf("prefill %d tokens in %.2f s", n, res.Prefill.Seconds())
	if res.ReusedTokens > 0 {
		line += fmt.Sprintf(" (%d more reused from the cache)", res.ReusedTokens)
	}
	st := res.SDTP
	if st == nil {
		return line + ", mode llamacpp: nothing pruned"
	}
	line += fmt.Sprintf(", %.0f%% pruned, %.2f× fewer FLOPs", 100*prunedFrac(st), st.FLOPRatio)
	if st.Scorer != "" {
		line += " (scorer " + st.Scorer + ")"
	}
	return line
}

// prunedFrac is the share of the prefilled tokens that did not reach the
// last layer.
func prunedFrac(st *llama.SDTPStats) float64 {
	k := st.KeptPerStage
	if len(k) == 0 || k[0] == 0 {
		return 0
	}
	return 1 - float64(k[len(k)-1])/float64(k[0])
}
