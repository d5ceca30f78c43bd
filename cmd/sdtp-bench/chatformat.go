package main

import (
	"fmt"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/fidelity"
)

// promptFormat picks the fidelity prompts' format from --prompt-format:
// the model's chat template (instruct models) or a completion prompt
// (base models); auto takes the template when the model has one.
func (b *bench) promptFormat() (fidelity.Format, error) {
	f, err := fidelity.ChooseFormat(b.cfg.fid.format, b.cfg.fid.system, b.model.UserTurn, bridge.ErrNoChatTemplate)
	if err != nil {
		return f, fmt.Errorf("--prompt-format %s, --system: %w", b.cfg.fid.format, err)
	}
	return f, nil
}

// evalDataDir holds the QA sets and the essays (make data).
func evalDataDir() string { return fetch.LongContextEvalDir() }
