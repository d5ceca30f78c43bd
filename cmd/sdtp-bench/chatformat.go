package main

import (
	"errors"
	"fmt"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/fidelity"
)

// promptFormat picks the fidelity prompts' format from --prompt-format:
// the model's chat template (instruct models) or a completion prompt
// (base models); auto takes the template when the model has one.
func (b *bench) promptFormat() (fidelity.Format, error) {
	chat := func(system, user string) (string, error) {
		var msgs []bridge.ChatMessage
		if system != "" {
			msgs = append(msgs, bridge.ChatMessage{Role: "system", Content: system})
		}
		return b.model.ApplyChatTemplate(append(msgs, bridge.ChatMessage{Role: "user", Content: user}), true)
	}
	fc := b.cfg.fid
	if fc.format == "completion" {
		return fidelity.Format{}, nil
	}
	_, err := chat("", "probe")
	switch {
	case err == nil:
		return fidelity.Format{Chat: chat, System: fc.system}, nil
	case fc.format == "auto" && errors.Is(err, bridge.ErrNoChatTemplate):
		if fc.system != "" {
			return fidelity.Format{}, errors.New("--system needs chat prompts, and the model has no chat template")
		}
		return fidelity.Format{}, nil
	}
	return fidelity.Format{}, fmt.Errorf("--prompt-format %s: %w", fc.format, err)
}

// evalDataDir holds the QA sets and the essays (make data).
func evalDataDir() string { return fetch.LongContextEvalDir() }
