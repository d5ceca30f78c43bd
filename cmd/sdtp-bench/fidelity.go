package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/internal/fidelity"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

// fidelityConfig holds the flags of the fidelity suite (--ruler, --qa);
// --lengths, --seed and --haystack are shared with --passkey.
type fidelityConfig struct {
	ruler   bool
	qa      string // "squad" or "hotpot"
	tasks   []string
	prompts int
	records string
	// recordsOnly answers nothing: each cell reports the first prompts
	// that every variant has a record for (a run in progress).
	recordsOnly bool
	format      string // auto, chat, completion
	system      string
	qaData      string
}

func (c *fidelityConfig) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.ruler, "ruler", false, "fidelity suite: RULER-style retrieval tasks (--tasks) over --haystack at each of --lengths")
	fs.StringVar(&c.qa, "qa", "", "fidelity suite: document QA on the development split of squad or hotpot at each of --lengths")
	fs.StringSliceVar(&c.tasks, "tasks", fidelity.RulerTasks, "--ruler: tasks to run")
	fs.IntVar(&c.prompts, "prompts", 24, "--ruler/--qa: prompts per task and length")
	fs.StringVar(&c.records, "records", "", "--ruler/--qa: directory of per-prompt results (JSONL); answers found there are reused, new ones appended, so an interrupted run resumes")
	fs.BoolVar(&c.recordsOnly, "records-only", false, "--ruler/--qa: answer nothing; report each cell's first prompts that every mode has in --records (a run in progress)")
	fs.StringVar(&c.format, "prompt-format", "auto", "--ruler/--qa: chat (the model's chat template), completion (ends in an answer prefix), or auto (chat when the model has a template)")
	fs.StringVar(&c.system, "system", "", "--ruler/--qa: system message of chat prompts")
	fs.StringVar(&c.qaData, "qa-data", "", "--qa: directory holding squad.json and hotpotqa.json (default: the make data cache)")
}

// check refuses what cannot apply.
func (c *fidelityConfig) check(cfg *config, fs *flag.FlagSet) error {
	if !c.ruler && c.qa == "" {
		return nil // its flags are refused elsewhere (kindFlags)
	}
	if c.ruler && c.qa != "" {
		return errors.New("--ruler and --qa are separate runs: give one")
	}
	for _, name := range []string{"passkey", "quality", "mc", "chat", "doc", "questions"} {
		if fs.Changed(name) {
			return fmt.Errorf("--%s is another kind of run than --ruler/--qa", name)
		}
	}
	if c.qa != "" && c.qa != "squad" && c.qa != "hotpot" {
		return fmt.Errorf("--qa %q: want squad or hotpot", c.qa)
	}
	if c.qa != "" && fs.Changed("tasks") {
		return errors.New("--tasks applies to --ruler; --qa names its one task")
	}
	if c.ruler && fs.Changed("qa-data") {
		return errors.New("--qa-data applies to --qa")
	}
	if c.qa != "" && (fs.Changed("haystack") || fs.Changed("text-from") || fs.Changed("text-to")) {
		return errors.New("--haystack, --text-from and --text-to apply to --ruler; --qa reads its documents from --qa-data")
	}
	for _, t := range c.tasks {
		if !slices.Contains(fidelity.RulerTasks, t) {
			return fmt.Errorf("unknown task %q (known: %s)", t, strings.Join(fidelity.RulerTasks, ", "))
		}
	}
	if c.recordsOnly && c.records == "" {
		return errors.New("--records-only reports from --records: give the directory")
	}
	if c.prompts < 1 || len(cfg.lengths) == 0 {
		return errors.New("--prompts must be positive and --lengths non-empty")
	}
	for _, n := range cfg.lengths {
		if n < 256 {
			return fmt.Errorf("length %d is too short for the fidelity tasks (>= 256)", n)
		}
	}
	if !slices.Contains([]string{"auto", "chat", "completion"}, c.format) {
		return fmt.Errorf("--prompt-format %q: want auto, chat or completion", c.format)
	}
	if c.system != "" && c.format == "completion" {
		return errors.New("--system needs chat prompts")
	}
	if slices.Contains(cfg.modes, "llamacpp") {
		return errors.New("--ruler/--qa compare the staged modes: drop llamacpp (dense is the same model path)")
	}
	return nil
}

// fidelityTask is one task of the run and how its prompts are built.
type fidelityTask struct {
	name   string
	family string
	build  func(n, index int) (fidelity.Prompt, error)
}

// fidelity runs the suite: for each length and task, --prompts prompts,
// each answered by every variant in turn (reused from --records when
// there), then one row per variant with accuracy, interval, depth bands
// and the paired comparison with dense.
func (b *bench) fidelity() (format string, commits []string, rows []report.Row, err error) {
	fc := b.cfg.fid
	pf, err := b.promptFormat()
	if err != nil {
		return "", nil, nil, err
	}
	gen := &fidelity.Generator{Tok: b.model, Format: pf, Seed: b.cfg.seed}
	tasks, err := b.fidelityTasks(gen)
	if err != nil {
		return "", nil, nil, err
	}
	var recs *fidelity.Records
	if fc.records != "" {
		if recs, err = fidelity.OpenRecords(fc.records); err != nil {
			return "", nil, nil, err
		}
		fmt.Fprintf(b.log, "fidelity: %d records in %s\n", recs.Len(), fc.records)
	}
	modelID, err := b.modelIdentity()
	if err != nil {
		return "", nil, nil, err
	}
	commit := gitCommit()
	for _, n := range b.cfg.lengths {
		for _, t := range tasks {
			got := make([][]fidelity.Record, len(b.vars)) // [variant][prompt]
			cached := make([]int, len(b.vars))
			for i := range fc.prompts {
				p, err := t.build(n, i)
				if err != nil {
					return "", nil, nil, err
				}
				if fc.recordsOnly && !b.recorded(recs, modelID, p) {
					break
				}
				var line []string
				for vi, v := range b.vars {
					rec, hit, err := b.answer(recs, modelID, commit, v, p)
					if err != nil {
						return "", nil, nil, fmt.Errorf("%s %d #%d, %v: %w", t.name, n, i, v, err)
					}
					if hit {
						cached[vi]++
					}
					if rec.Commit != "" && !slices.Contains(commits, rec.Commit) {
						commits = append(commits, rec.Commit)
					}
					got[vi] = append(got[vi], rec)
					line = append(line, fmt.Sprintf("%s %s", rec.Mode, mark(rec.Correct)))
				}
				fmt.Fprintf(b.log, "fidelity: %s %d #%d/%d: %s\n", t.name, n, i+1, fc.prompts, strings.Join(line, ", "))
			}
			if len(got[0]) == 0 {
				continue // --records-only: nothing of this cell yet
			}
			cell, err := b.fidelityRows(t, n, got, cached)
			if err != nil {
				return "", nil, nil, err
			}
			rows = append(rows, cell...)
		}
	}
	return pf.Name(), commits, rows, nil
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// answer returns the variant's answer to p and its verdict: from the
// records when they hold it (scored again, so a change of scoring applies
// to old answers), else by a greedy answer, then recorded.
func (b *bench) answer(recs *fidelity.Records, modelID, commit string, v variant, p fidelity.Prompt) (fidelity.Record, bool, error) {
	keyFor := b.recordKeys(modelID, v, p)
	if recs != nil {
		if rec, ok := lookup(recs, keyFor, p); ok {
			rec.Verdict = fidelity.Score(p, rec.Output)
			return rec, true, nil
		}
	}
	start := time.Now()
	out, ended, droppedAt, err := b.greedyAnswer(v, p.Tokens, p.AnswerTokens)
	if err != nil {
		return fidelity.Record{}, false, err
	}
	seconds := time.Since(start).Seconds()
	kept, err := fidelity.NeedlesKept(p.Needles, droppedAt)
	if err != nil {
		return fidelity.Record{}, false, err
	}
	rec := fidelity.Record{Key: keyFor(p.AnswerTokens), Model: strings.TrimSuffix(filepath.Base(b.cfg.model), ".gguf"), Task: p.Task, Length: p.Length,
		Index: p.Index, Mode: v.row(p.Length).Mode, Schedule: v.String(), Depth: p.Depth, Output: out,
		Verdict: fidelity.Score(p, out), Seconds: seconds, NeedlesKept: kept, Commit: commit, AnswerTokens: p.AnswerTokens, EndedEarly: ended}
	if recs != nil {
		err = recs.Add(rec)
	}
	return rec, false, err
}

// recorded says whether every variant's answer to p is in recs.
func (b *bench) recorded(recs *fidelity.Records, modelID string, p fidelity.Prompt) bool {
	for _, v := range b.vars {
		if _, ok := lookup(recs, b.recordKeys(modelID, v, p), p); !ok {
			return false
		}
	}
	return true
}

// recordKeys is the record key of p's answer in v under a given answer
// budget: what answers are stored under and looked up by.
func (b *bench) recordKeys(modelID string, v variant, p fidelity.Prompt) func(budget int) string {
	id := b.variantIdentity(v)
	return func(budget int) string { return fidelity.RecordKey(modelID, id, budget, p.Tokens) }
}

// lookup finds the answer to p among recs: under p's budget, or, for a
// chat prompt, an answer made under the task's completion budget that
// ended before it.
func lookup(recs *fidelity.Records, keyFor func(budget int) string, p fidelity.Prompt) (fidelity.Record, bool) {
	return recs.Answer(keyFor, p.AnswerTokens, fidelity.AnswerTokens(p.Task, fidelity.Format{}))
}

// fidelityRows sums one (task, length) cell: a row per variant.
func (b *bench) fidelityRows(t fidelityTask, n int, got [][]fidelity.Record, cached []int) ([]report.Row, error) {
	dense := slices.IndexFunc(b.vars, func(v variant) bool { return v.mode == "dense" && v.kv == sdtp.KVNone })
	verdicts := func(recs []fidelity.Record) []bool {
		out := make([]bool, len(recs))
		for i, r := range recs {
			out[i] = r.Correct
		}
		return out
	}
	var rows []report.Row
	for vi, v := range b.vars {
		recs := got[vi]
		fd := &report.Fidelity{Task: t.name, Family: t.family, Cached: cached[vi]}
		for i := range len(fidelity.DepthBands) - 1 {
			fd.Bands = append(fd.Bands, report.Band{Lo: fidelity.DepthBands[i], Hi: fidelity.DepthBands[i+1]})
		}
		for _, r := range recs {
			if r.Correct {
				fd.Correct++
			}
			fd.EM += r.EM / float64(len(recs))
			fd.F1 += r.F1 / float64(len(recs))
			fd.ComputeS += r.Seconds
			if k := fidelity.Band(r.Depth); k >= 0 {
				fd.Bands[k].N++
				if r.Correct {
					fd.Bands[k].Correct++
				}
			}
		}
		if t.name == fidelity.TaskCommonWords {
			fd.Bands = nil // no needle, no depth
		}
		fd.Acc = float64(fd.Correct) / float64(len(recs))
		fd.Low, fd.High = numeric.Wilson(fd.Correct, len(recs))
		if dense >= 0 && vi != dense {
			var err error
			if fd.DenseOnly, fd.ModeOnly, err = numeric.Paired(verdicts(got[dense]), verdicts(recs)); err != nil {
				return nil, err
			}
			fd.Paired = true
		}
		row := v.row(n)
		row.Samples, row.Fidelity = len(recs), fd
		rows = append(rows, row)
	}
	return rows, nil
}

// fidelityTasks loads the data the run needs and returns its tasks.
func (b *bench) fidelityTasks(gen *fidelity.Generator) ([]fidelityTask, error) {
	fc := b.cfg.fid
	if fc.qa != "" {
		dir := fc.qaData
		if dir == "" {
			dir = evalDataDir()
		}
		task := fidelity.TaskSQuAD
		if fc.qa == "hotpot" {
			task = fidelity.TaskHotpot
		}
		set, err := fidelity.LoadQASet(dir, task)
		if err != nil {
			return nil, fmt.Errorf("%w (make data fetches the QA sets)", err)
		}
		return []fidelityTask{{task, report.FamilyQA, func(n, i int) (fidelity.Prompt, error) { return gen.QA(set, n, i) }}}, nil
	}
	path := b.cfg.haystack
	if path == "" {
		path = filepath.Join(evalDataDir(), "PaulGrahamEssays.json")
	}
	text, err := fidelity.LoadHaystack(path)
	if err != nil && b.cfg.haystack == "" {
		err = fmt.Errorf("%w (make data fetches the essays; or give --haystack)", err)
	}
	if err != nil {
		return nil, err
	}
	// --text-from/--text-to: e.g. WikiText's part the predictors never saw.
	text = string(train.Portion([]byte(text), b.cfg.textFrom, b.cfg.textTo))
	if gen.Haystack, err = fidelity.NewHaystack(text); err != nil {
		return nil, err
	}
	var out []fidelityTask
	for _, name := range fc.tasks {
		out = append(out, fidelityTask{name, report.FamilyNeedles, func(n, i int) (fidelity.Prompt, error) {
			return gen.Ruler(name, n, i)
		}})
	}
	return out, nil
}

// modelIdentity names the model in record keys: file name, description,
// size and a hash of its token embeddings (what predictors bind to).
func (b *bench) modelIdentity() (string, error) {
	emb, err := predictor.EmbeddingHash(b.cfg.model)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(b.cfg.model)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s|%s|%d|%s", filepath.Base(b.cfg.model), b.model.Desc(), st.Size(), emb), nil
}

// variantIdentity is a variant in record keys: its schedule and KV
// policy; for learned predictors a hash of their files (mode learned: all
// but the fusion block, which it does not use); for question attention
// without predictors the scorer's settings, which live in code.
func (b *bench) variantIdentity(v variant) string {
	id := v.String()
	switch {
	case v.mode == "learned":
		id += "|" + v.scorer + "|" + b.sdtpScorer() + "|" + b.predictorHash.stages
	case b.learned(v.mode):
		id += "|" + v.scorer + "|" + b.sdtpScorer() + "|" + b.predictorHash.all
	case v.mode == "sdtp" || strings.HasPrefix(v.mode, "attention-acc"):
		// The settings of the scorer the mode runs (bench.scorer), so a
		// record key follows whatever that is.
		if t, ok := b.scorer(v.mode).(*timed); ok {
			id += fmt.Sprintf("|%+v", t.Scorer)
		}
	}
	return id
}

// predictorHash identifies a predictor set's files in record keys.
type predictorHash struct {
	all    string // every regular file of the set's directory, names and contents
	stages string // the same with predictors.json's fusion block left out
}

// hashPredictors hashes the regular files of dir, the set's
// predictors.json once whole and once without its "fusion" member.
func hashPredictors(dir string) (predictorHash, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return predictorHash{}, err
	}
	all, stages := sha256.New(), sha256.New()
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return predictorHash{}, err
		}
		fmt.Fprintf(all, "%s\x00%d\x00", e.Name(), len(raw))
		all.Write(raw)
		if e.Name() == "predictors.json" {
			if raw, err = withoutFusion(raw); err != nil {
				return predictorHash{}, fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
			}
		}
		fmt.Fprintf(stages, "%s\x00%d\x00", e.Name(), len(raw))
		stages.Write(raw)
	}
	return predictorHash{hex.EncodeToString(all.Sum(nil)), hex.EncodeToString(stages.Sum(nil))}, nil
}

// withoutFusion re-encodes a predictors.json without its "fusion" member
// (keys sorted, so equal sets give equal bytes).
func withoutFusion(raw []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "fusion")
	return json.Marshal(m)
}

func printFidelity(w io.Writer, rep report.Run) {
	printHeader(w, rep)
	fmt.Fprintf(w, "prompts: %s\n\n", rep.PromptFormat)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\ttokens\tmode\tprompts\taccuracy\t95% CI\tdense✓ mode✗\tdense✗ mode✓\tEM\tF1\t")
	for _, r := range rep.Results {
		fd := r.Fidelity
		paired := []string{"-", "-"}
		if fd.Paired {
			paired = []string{fmt.Sprint(fd.DenseOnly), fmt.Sprint(fd.ModeOnly)}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.2f\t[%.2f, %.2f]\t%s\t%s\t%.2f\t%.2f\t\n", fd.Task, r.PromptTokens, r.Mode, r.Samples,
			fd.Acc, fd.Low, fd.High, paired[0], paired[1], fd.EM, fd.F1)
	}
	tw.Flush()
}

// fidelityMaxAnswer sizes the context: the longest answer after a prompt.
var fidelityMaxAnswer = fidelity.MaxAnswerTokens()
