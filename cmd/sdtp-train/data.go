package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/fidelity"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

// taskNames are the --tasks sdtp-train builds prompts for: the suite's
// needle tasks and its two QA sets.
var taskNames = append(slices.Clone(fidelity.RulerTasks), fidelity.TaskSQuAD, fidelity.TaskHotpot)

// loadSequences reads every --data file and builds --task-samples prompts
// of each --tasks task, in the model's prompt format (--prompt-format).
func loadSequences(m *bridge.Model, c config) ([]train.Sequence, error) {
	f, err := fidelity.ChooseFormat(c.format, "", m.UserTurn, bridge.ErrNoChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("--prompt-format %s: %w", c.format, err)
	}
	o := train.DataOptions{MaxLen: c.maxLen, MinLen: c.minLen, From: c.textFrom, To: c.textTo, Answers: c.answerLoss, MaxAnswer: c.maxAnswer}
	if f.Chat != nil {
		o.Chat = func(user string) (string, error) { return f.Chat("", user) }
	}
	var seqs []train.Sequence
	for _, path := range c.data {
		s, err := train.LoadSequences(path, m, o)
		if err != nil {
			return nil, err
		}
		seqs = append(seqs, s...)
	}
	if len(c.tasks) == 0 {
		return seqs, nil
	}
	s, err := taskSequences(m, f, c)
	return append(seqs, s...), err
}

// taskSequences builds --task-samples training prompts of --max-len tokens
// per task, each followed by its reference answer: the suite's tasks with
// other draws and without its test questions (fidelity.ForTraining).
func taskSequences(m *bridge.Model, f fidelity.Format, c config) ([]train.Sequence, error) {
	gen := (&fidelity.Generator{Tok: m, Format: f, Seed: c.taskSeed}).ForTraining()
	var out []train.Sequence
	for _, task := range c.tasks {
		build := func(n, i int) (fidelity.Prompt, error) { return gen.Ruler(task, n, i) }
		switch {
		case task == fidelity.TaskSQuAD || task == fidelity.TaskHotpot:
			set, err := qaSet(gen, task, c.qaData)
			if err != nil {
				return nil, err
			}
			build = func(n, i int) (fidelity.Prompt, error) { return gen.QA(set, n, i) }
		case gen.Haystack == nil && task != fidelity.TaskCommonWords:
			text, err := fidelity.LoadHaystack(c.haystack)
			if err != nil {
				return nil, fmt.Errorf("--haystack: %w (make data fetches the essays)", err)
			}
			if gen.Haystack, err = fidelity.NewHaystack(text); err != nil {
				return nil, err
			}
		}
		for i := range c.taskSamples {
			p, err := build(c.maxLen, i)
			if err != nil {
				return nil, fmt.Errorf("--tasks %s: %w", task, err)
			}
			answer, err := m.Tokenize(p.Reference(f), false, false)
			if err != nil {
				return nil, err
			}
			out = append(out, train.Sequence{Prompt: p.Tokens, Answer: answer[:min(len(answer), c.maxAnswer)]})
		}
	}
	return out, nil
}

// qaSet loads a QA set's development split, less the suite's test
// questions.
func qaSet(gen *fidelity.Generator, task, dir string) (*fidelity.QASet, error) {
	set, err := fidelity.LoadQASet(dir, task)
	if err != nil {
		return nil, fmt.Errorf("--qa-data: %w (make data fetches the QA sets)", err)
	}
	return gen.WithoutTestQuestions(set)
}

// checkTasks refuses unknown --tasks and task flags without --tasks.
func checkTasks(c config, changed func(string) bool) error {
	for _, t := range c.tasks {
		if !slices.Contains(taskNames, t) {
			return fmt.Errorf("--tasks: unknown task %q (known: %s)", t, strings.Join(taskNames, ", "))
		}
	}
	if len(c.tasks) == 0 {
		for _, name := range []string{"task-samples", "haystack", "qa-data", "task-seed"} {
			if changed(name) {
				return fmt.Errorf("--%s applies to --tasks", name)
			}
		}
	} else if c.taskSamples < 1 {
		return fmt.Errorf("--task-samples %d: want at least 1 prompt per task", c.taskSamples)
	}
	if !slices.Contains(fidelity.FormatNames, c.format) {
		return fmt.Errorf("--prompt-format %q: want one of %s", c.format, strings.Join(fidelity.FormatNames, ", "))
	}
	if c.maxAnswer < 1 {
		return fmt.Errorf("--max-answer %d: want at least 1 answer token", c.maxAnswer)
	}
	if len(c.data) == 0 && len(c.tasks) == 0 {
		return errors.New("--data or --tasks is required (e.g. --data ../shared/data/dolly-subset/dolly.jsonl)")
	}
	return nil
}

// defaultEvalData is where make data puts the essays and QA sets.
func defaultEvalData() string { return fetch.LongContextEvalDir() }
