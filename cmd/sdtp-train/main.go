// sdtp-train makes SDTP predictors for a GGUF model on this machine:
// calibration (gradient × input saliency from the model's own weights,
// cached and resumable), then one ranking-loss MLP per pruning stage,
// written as ONNX + predictors.json and optionally embedded in a GGUF.
// docs/TRAINING.md has the method, the choices and measured figures.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/internal/cliflag"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

type config struct {
	model, out, embed, cacheDir, report string
	baseline                            string
	data, tasks                         []string
	format, haystack, qaData            string
	answerLoss                          bool
	maxAnswer, taskSamples              int
	taskSeed                            uint64
	textFrom, textTo                    float64
	samples, valSamples, maxLen, minLen int
	layers                              []int
	keepRatio, lossWindow               float64
	target, states                      string
	compare, quiet, context             bool
	threads                             int
	fit                                 train.Config
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-train:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sdtp-train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&c.model, "model", "m", cache.DefaultModel(), "GGUF model to train predictors for")
	fs.StringArrayVar(&c.data, "data", nil, "training text: JSONL (instruction/context/response, prompt/answer or text fields) or plain text; repeatable")
	fs.BoolVar(&c.answerLoss, "answer-loss", true, "JSONL records with a response or answer: saliency from the loss on the answer tokens after the prompt (false: each record is one text, its loss the final --loss-window)")
	fs.IntVar(&c.maxAnswer, "max-answer", 64, "answer tokens in the loss at most")
	fs.StringSliceVar(&c.tasks, "tasks", nil, "also train on prompts of these fidelity-suite tasks ("+strings.Join(taskNames, ", ")+"), --max-len tokens each with its reference answer: other draws than sdtp-bench's, QA without its test questions")
	fs.IntVar(&c.taskSamples, "task-samples", 16, "--tasks: prompts per task")
	fs.Uint64Var(&c.taskSeed, "task-seed", 1, "--tasks: the fidelity suite's seed (sdtp-bench --seed) whose test prompts training avoids")
	fs.StringVar(&c.haystack, "haystack", filepath.Join(defaultEvalData(), "PaulGrahamEssays.json"), "--tasks: haystack text of the needle tasks (make data fetches the essays)")
	fs.StringVar(&c.qaData, "qa-data", defaultEvalData(), "--tasks: directory holding squad.json and hotpotqa.json (make data)")
	fs.StringVar(&c.format, "prompt-format", "auto", "prompts of JSONL records and --tasks: chat (the model's chat template), completion, or auto (chat when the model has a template)")
	fs.Float64Var(&c.textFrom, "text-from", 0, "read plain-text files from this fraction of their length")
	fs.Float64Var(&c.textTo, "text-to", 1, "… up to this fraction (hold the rest out for sdtp-bench, e.g. --text-to 0.7)")
	fs.IntVar(&c.samples, "samples", 64, "training sequences; more rank better (each costs one calibration pass, ~7 s for a 270M model at 512 tokens on 2 cores; see docs/TRAINING.md)")
	fs.IntVar(&c.valSamples, "val-samples", 16, "held-out sequences for validation")
	fs.IntVar(&c.maxLen, "max-len", 512, "tokens per sequence at most")
	fs.IntVar(&c.minLen, "min-len", 64, "skip sequences shorter than this")
	fs.IntSliceVar(&c.layers, "layers", nil, "pruning layers (default: 10 stages scaled to the model's depth)")
	fs.Float64Var(&c.keepRatio, "keep-ratio", sdtp.DefaultKeepRatio, "fraction of live tokens kept at each stage")
	fs.Float64Var(&c.lossWindow, "loss-window", 0.1, "saliency's loss L: the next-token predictions of this final fraction of each sequence (1 = all; see docs/TRAINING.md for why 0.1)")
	fs.StringVar(&c.target, "target", string(train.TargetAbs), "importance learned from saliency: abs (|x·∂L/∂x| at the stage), cumulative (summed over this and later stages), signed (−x·∂L/∂x), or one factor of |x·∂L/∂x| to study it: grad-norm (‖∂L/∂x‖) or alignment (|cos(x, ∂L/∂x)|)")
	fs.StringVar(&c.states, "states", "pruned", "hidden states stage s trains on: pruned (after earlier stages pruned) or dense")
	fs.BoolVar(&c.context, "context", true, "predictors also read each token's context features (how it relates to the prompt's tail; docs/TRAINING.md); false: the hidden state only")
	fs.BoolVar(&c.compare, "compare", false, "also train the other targets (pruned states), the dense-states and the other --context variant, and report all held-out figures and how |saliency| splits into ‖∂L/∂x‖ and |cos|")
	fs.StringVarP(&c.out, "out", "o", "", "output directory: one ONNX per stage + predictors.json")
	fs.StringVar(&c.embed, "embed", "", "also write a copy of the model with the predictors inside (GGUF)")
	fs.StringVar(&c.cacheDir, "cache", "", "calibration cache (default: under the go-sdtp cache dir, keyed by model and settings)")
	fs.StringVar(&c.report, "report", "", "write the training figures as JSON here")
	fs.StringVar(&c.baseline, "baseline", "", "also score the held-out sequences with the predictor set in this directory (e.g. the shipped one) at the stages it has, to compare on the same records and target")
	fs.IntVarP(&c.threads, "threads", "t", 0, "CPU threads (0 or -1 = all cores, or SDTP_THREADS)")
	fs.BoolVarP(&c.quiet, "quiet", "q", false, "no progress bars")
	fs.IntVar(&c.fit.Epochs, "epochs", 2, "training epochs (the best held-out epoch is kept)")
	fs.IntVar(&c.fit.Hidden, "hidden", 0, "predictor width (default n_embd/4)")
	fs.Float64Var(&c.fit.LR, "lr", 1e-3, "Adam learning rate")
	fs.IntVar(&c.fit.Batch, "batch", 64, "tokens per training step")
	fs.IntVar(&c.fit.Pairs, "pairs", 8, "ranking pairs per token")
	fs.Float64Var(&c.fit.RankWeight, "rank-weight", 1, "weight of the ranking loss (MSE has 1)")
	fs.IntVar(&c.fit.Patience, "patience", 3, "stop after this many epochs without a better held-out Spearman (0 = never)")
	fs.Uint64Var(&c.fit.Seed, "seed", 1, "seed for the split, initialisation and pair sampling")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := cliflag.RefuseEmpty(fs, "model", "out", "embed", "cache", "report", "baseline", "target", "states", "haystack", "qa-data"); err != nil {
		return c, err
	}
	if err := checkTasks(c, fs.Changed); err != nil {
		return c, err
	}
	switch {
	case c.out == "" && c.embed == "":
		return c, errors.New("--out DIR or --embed OUT.gguf is required")
	case c.samples < 1 || c.valSamples < 1:
		return c, fmt.Errorf("--samples %d and --val-samples %d must be at least 1", c.samples, c.valSamples)
	case c.minLen < 16 || c.maxLen < c.minLen:
		return c, fmt.Errorf("--max-len %d must be at least --min-len %d, which must be at least 16", c.maxLen, c.minLen)
	case c.textFrom < 0 || c.textTo > 1 || c.textFrom >= c.textTo:
		return c, fmt.Errorf("--text-from %g and --text-to %g must satisfy 0 <= from < to <= 1", c.textFrom, c.textTo)
	case c.lossWindow <= 0 || c.lossWindow > 1:
		return c, fmt.Errorf("--loss-window %g must be in (0, 1]", c.lossWindow)
	case c.states != "pruned" && c.states != "dense":
		return c, fmt.Errorf("--states %q: want pruned or dense", c.states)
	case !(c.keepRatio > 0 && c.keepRatio <= 1):
		return c, fmt.Errorf("--keep-ratio %v: the keep ratio (fraction of live tokens each stage keeps) must be in (0, 1]", c.keepRatio)
	case c.threads < -1:
		return c, fmt.Errorf("--threads %d: want a count, or 0 or -1 for all cores", c.threads)
	case fs.Changed("hidden") && c.fit.Hidden < 1:
		return c, fmt.Errorf("--hidden %d: a predictor needs at least 1 hidden unit (default n_embd/4)", c.fit.Hidden)
	case c.fit.Epochs < 1:
		return c, fmt.Errorf("--epochs %d must be at least 1", c.fit.Epochs)
	case c.fit.Batch < 2:
		return c, fmt.Errorf("--batch %d must be at least 2 tokens", c.fit.Batch)
	case !(c.fit.LR > 0):
		return c, fmt.Errorf("--lr %v must be positive", c.fit.LR)
	case c.fit.Pairs < 0 || c.fit.RankWeight < 0:
		return c, fmt.Errorf("--pairs %d and --rank-weight %v must not be negative (0 = no ranking loss)", c.fit.Pairs, c.fit.RankWeight)
	case c.fit.Patience < 0:
		return c, fmt.Errorf("--patience %d is negative (0 = never stop early)", c.fit.Patience)
	}
	if c.threads == -1 { // llama.cpp's -t -1
		c.threads = 0
	}
	if _, err := train.ParseTarget(c.target); err != nil {
		return c, err
	}
	return c, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	m, err := bridge.LoadModel(c.model, bridge.ModelParams{UseMMap: true})
	if err != nil {
		return err
	}
	defer m.Free()
	arch, ok := bridge.StagedArch(m)
	if !ok {
		return fmt.Errorf("%s: architecture not supported by the staged engine, so its predictors could not be used", c.model)
	}
	ctx, err := m.NewContext(bridge.ContextParams{NCtx: c.maxLen + c.maxAnswer + 1, NBatch: 512, Threads: c.threads})
	if err != nil {
		return err
	}
	defer ctx.Free()
	sched, err := sdtp.DefaultSchedule(m.NLayer(), c.keepRatio)
	if err != nil {
		return err
	}
	if len(c.layers) > 0 {
		sched = sdtp.Uniform(c.layers, c.keepRatio)
	}
	if err := sched.Validate(m.NLayer()); err != nil {
		return err
	}
	hash, err := predictor.EmbeddingHash(c.model)
	if err != nil {
		return err
	}
	var base *baseline
	if c.baseline != "" {
		if base, err = openBaseline(c.baseline, sched, arch, m.NLayer(), m.NEmbd(), hash); err != nil {
			return err
		}
	}

	seqs, err := loadSequences(m, c)
	if err != nil {
		return err
	}
	trainSeqs, valSeqs := train.Split(seqs, c.samples, c.valSamples, c.fit.Seed)
	answers := 0
	for _, s := range seqs {
		answers += min(1, len(s.Answer))
	}
	fmt.Fprintf(stderr, "sdtp-train: %d training and %d held-out sequences (of %d, %d with answers) from %s; stages at layers %v\n",
		len(trainSeqs), len(valSeqs), len(seqs), answers, strings.Join(append(slices.Clone(c.data), c.tasks...), ", "), sched.Layers)

	if c.cacheDir == "" {
		c.cacheDir = filepath.Join(cache.Dir(), "calibration", train.CacheKey(hash, sched, c.lossWindow))
	}
	all := append(slices.Clone(trainSeqs), valSeqs...)
	recs, calTime, err := calibrate(ctx, sched, all, train.Cache{Dir: c.cacheDir}, c, stderr)
	if err != nil {
		return err
	}
	trainRecs, valRecs := recs[:len(trainSeqs)], recs[len(trainSeqs):]

	if c.fit.Hidden == 0 {
		c.fit.Hidden = m.NEmbd() / 4
	}
	rep := report{Model: c.model, Data: c.data, Tasks: c.tasks, TaskSamples: len(c.tasks) * c.taskSamples, AnswerLoss: c.answerLoss, TextPortion: [2]float64{c.textFrom, c.textTo}, TrainSequences: len(trainRecs), ValSequences: len(valRecs),
		Layers: sched.Layers, KeepRatios: sched.KeepRatios, Config: c.fit, LossWindow: c.lossWindow, Target: c.target, States: c.states,
		CalibrationSeconds: calTime.Seconds(), CalibrationCache: c.cacheDir}
	variants := []variant{{train.Target(c.target), c.states, c.context}}
	if c.compare {
		other := map[string]string{"pruned": "dense", "dense": "pruned"}
		variants = append(variants, variant{train.Target(c.target), other[c.states], c.context},
			variant{train.Target(c.target), c.states, !c.context})
		for _, t := range train.Targets {
			if t != train.Target(c.target) {
				variants = append(variants, variant{t, "pruned", c.context})
			}
		}
		for s := range sched.Layers {
			rep.Decomposition = append(rep.Decomposition, train.Decompose(valRecs, s))
		}
	}
	fitStart := time.Now()
	var mlps []predictor.MLP
	for i, v := range variants {
		res, stages, err := fitVariant(trainRecs, valRecs, sched, m.NEmbd(), v, c, stderr)
		if err != nil {
			return err
		}
		rep.Variants = append(rep.Variants, res)
		if i == 0 {
			mlps, rep.Stages = res.mlps, stages
		}
	}
	if base != nil {
		rep.Baseline = base.eval(valRecs, sched.Layers, m.NEmbd(), train.Target(c.target))
	}
	rep.TrainingSeconds = time.Since(fitStart).Seconds()
	rep.TotalSeconds = time.Since(start).Seconds()
	printReport(stdout, rep)

	training := map[string]any{"tool": "sdtp-train", "data": c.data, "tasks": c.tasks, "task_samples": c.taskSamples, "answer_loss": c.answerLoss,
		"max_answer": c.maxAnswer, "prompt_format": c.format, "text_portion": []float64{c.textFrom, c.textTo}, "samples": len(trainRecs), "val_samples": len(valRecs),
		"max_len": c.maxLen, "loss_window": c.lossWindow, "target": c.target, "states": c.states, "context": c.context, "epochs": c.fit.Epochs, "lr": c.fit.LR,
		"rank_weight": c.fit.RankWeight, "pairs": c.fit.Pairs, "seed": c.fit.Seed, "val_spearman": rep.Variants[0].Spearman,
		"val_kendall": rep.Variants[0].Kendall, "saliency": "x·dL/dx, L = mean next-token cross-entropy of the answer tokens, or of the last loss_window of a sequence without answer"}
	if c.out != "" {
		var man onnx.Manifest
		man.Version = 1
		man.Model.Arch = arch
		man.Model.NLayer, man.Model.NEmbd, man.Model.EmbdHash = m.NLayer(), m.NEmbd(), hash
		man.Layers, man.KeepRatios = sched.Layers, sched.KeepRatios
		man.HeadKeep, man.TailKeepFrac = sdtp.HeadKeep, sdtp.TailKeepFrac
		man.Training = training
		if err := onnx.WriteSet(c.out, man, mlps); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sdtp-train: wrote %s\n", c.out)
	}
	if c.embed != "" {
		raw, _ := json.Marshal(training)
		h := &gguf.Heads{Layers: sched.Layers, KeepRatios: sched.KeepRatios, HeadKeep: sdtp.HeadKeep,
			TailKeepFrac: sdtp.TailKeepFrac, ModelHash: hash, Training: string(raw), MLPs: mlps}
		if err := gguf.Embed(c.model, c.embed, h); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "sdtp-train: wrote %s\n", c.embed)
	}
	if c.report != "" {
		raw, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(c.report, append(raw, '\n'), 0o644)
	}
	return nil
}

// calibrate computes (or loads from the cache) a Record per sequence.
func calibrate(ctx *bridge.Context, sched sdtp.Schedule, seqs []train.Sequence, cc train.Cache, c config, stderr io.Writer) ([]train.Record, time.Duration, error) {
	start := time.Now()
	recs := make([]train.Record, len(seqs))
	var todo, old []int // not cached; cached before records had GradNorm
	for i, s := range seqs {
		rec, ok := cc.Load(s)
		switch {
		case !ok:
			todo = append(todo, i)
		case len(rec.GradNorm) == 0:
			old = append(old, i)
		}
		recs[i] = rec
	}
	fmt.Fprintf(stderr, "sdtp-train: calibration cache %s: %d of %d sequences done", cc.Dir, len(seqs)-len(todo), len(seqs))
	if len(old) > 0 {
		fmt.Fprintf(stderr, ", %d of them without gradient norms (a gradient pass each)", len(old))
	}
	fmt.Fprintln(stderr)
	if len(todo)+len(old) == 0 {
		return recs, 0, nil
	}
	g, err := ctx.NewGrad(c.threads)
	if err != nil {
		return nil, 0, err
	}
	defer g.Free()
	eng, err := ctx.NewEngine(c.maxLen, c.threads)
	if err != nil {
		return nil, 0, err
	}
	defer eng.Free()
	cal := train.Calibrator{Grad: g, Engine: eng, Schedule: sched, UBatch: 512, LossWindow: c.lossWindow}
	bar := newBar(len(todo)+len(old), "calibration", c.quiet, stderr)
	for _, i := range append(todo, old...) {
		rec := recs[i]
		if len(rec.Tokens) == 0 {
			rec, err = cal.Run(seqs[i])
		} else {
			err = cal.AddGradNorms(&rec)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("sequence %d: %w", i, err)
		}
		if err := cc.Store(rec); err != nil {
			return nil, 0, err
		}
		recs[i] = rec
		bar.Describe(fmt.Sprintf("calibration (loss %.2f)", rec.Loss))
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	return recs, time.Since(start), nil
}

type variant struct {
	target  train.Target
	states  string
	context bool
}

// variantResult is one trained variant's held-out figures per stage: rank
// agreement with its own target, and Spearman with the stage's |saliency|
// (comparable across targets). All variants are evaluated on the pruned
// held-out states, which is what a predictor sees at inference.
type variantResult struct {
	Target           string    `json:"target"`
	States           string    `json:"states"`
	Context          bool      `json:"context"`
	Spearman         []float64 `json:"val_spearman"`
	Kendall          []float64 `json:"val_kendall"`
	SpearmanSaliency []float64 `json:"val_spearman_abs_saliency"`
	mlps             []predictor.MLP
}

type stageReport struct {
	Layer     int                `json:"layer"`
	Train     int                `json:"train_tokens"`
	BestEpoch int                `json:"best_epoch"`
	History   []train.EpochStats `json:"history"`
}

func fitVariant(trainRecs, valRecs []train.Record, sched sdtp.Schedule, d int, v variant, c config, stderr io.Writer) (variantResult, []stageReport, error) {
	res := variantResult{Target: string(v.target), States: v.states, Context: v.context}
	k := 0
	if v.context {
		k = len(sdtp.ContextFeatures)
	}
	var stages []stageReport
	for s, layer := range sched.Layers {
		tr := train.Examples(trainRecs, s, d, v.states == "pruned", v.context, v.target)
		val := train.Examples(valRecs, s, d, true, v.context, v.target)
		steps, tokens := 0, 0
		for _, ex := range tr {
			steps += (len(ex.Importance) + c.fit.Batch - 1) / c.fit.Batch
			tokens += len(ex.Importance)
		}
		bar := newBar(steps*c.fit.Epochs, fmt.Sprintf("stage %d/%d (layer %d, %s/%s)", s+1, len(sched.Layers), layer, v.target, v.states), c.quiet, stderr)
		n := 0
		fit, err := train.Train(tr, val, d, k, c.fit, func(loss float64) {
			if n++; n%20 == 0 {
				bar.Describe(fmt.Sprintf("stage %d/%d (layer %d, %s/%s) loss %.3f", s+1, len(sched.Layers), layer, v.target, v.states, loss))
			}
			_ = bar.Add(1)
		})
		_ = bar.Finish()
		if err != nil {
			return res, nil, fmt.Errorf("stage %d: %w", s, err)
		}
		sp, kt := train.Evaluate(fit.MLP, val) // the exported MLP, as it will run
		res.Spearman, res.Kendall = append(res.Spearman, sp), append(res.Kendall, kt)
		spAbs := sp
		if v.target != train.TargetAbs {
			spAbs, _ = train.Evaluate(fit.MLP, train.Examples(valRecs, s, d, true, v.context, train.TargetAbs))
		}
		res.SpearmanSaliency = append(res.SpearmanSaliency, spAbs)
		res.mlps = append(res.mlps, fit.MLP)
		stages = append(stages, stageReport{Layer: layer, Train: tokens, BestEpoch: fit.BestEpoch, History: fit.History})
	}
	return res, stages, nil
}

func newBar(n int, desc string, quiet bool, w io.Writer) *progressbar.ProgressBar {
	if quiet {
		w = io.Discard
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(200*time.Millisecond))
}

type report struct {
	Model              string          `json:"model"`
	Data               []string        `json:"data"`
	Tasks              []string        `json:"tasks,omitempty"`
	TaskSamples        int             `json:"task_samples,omitempty"`
	AnswerLoss         bool            `json:"answer_loss"`
	TextPortion        [2]float64      `json:"text_portion"`
	TrainSequences     int             `json:"train_sequences"`
	ValSequences       int             `json:"val_sequences"`
	Layers             []int           `json:"layers"`
	KeepRatios         []float64       `json:"keep_ratios"`
	LossWindow         float64         `json:"loss_window"`
	Target             string          `json:"target"`
	States             string          `json:"states"`
	Config             train.Config    `json:"config"`
	CalibrationSeconds float64         `json:"calibration_seconds"`
	CalibrationCache   string          `json:"calibration_cache"`
	TrainingSeconds    float64         `json:"training_seconds"`
	TotalSeconds       float64         `json:"total_seconds"`
	Variants           []variantResult `json:"variants"`
	// Baseline: --baseline's figures on the same held-out records.
	Baseline *baselineResult `json:"baseline,omitempty"`
	// Decomposition of the held-out |saliency| per stage (--compare).
	Decomposition []train.Decomposition `json:"saliency_decomposition,omitempty"`
	Stages        []stageReport         `json:"stages"`
}

func printReport(w io.Writer, r report) {
	fmt.Fprintf(w, "held-out rank agreement (%d sequences, pruned states): s/k = Spearman/Kendall with the variant's target, |s| = Spearman with the stage's |saliency|\n", r.ValSequences)
	fmt.Fprintf(w, "%-30s", "target/states[/no context]")
	for _, l := range r.Layers {
		fmt.Fprintf(w, " L%-5d", l)
	}
	fmt.Fprintln(w)
	for _, v := range r.Variants {
		for _, row := range []struct {
			name string
			vals []float64
		}{{"s", v.Spearman}, {"k", v.Kendall}, {"|s|", v.SpearmanSaliency}} {
			name := v.Target + "/" + v.States
			if !v.Context {
				name += "/no context"
			}
			fmt.Fprintf(w, "%-30s", name+" "+row.name)
			for _, x := range row.vals {
				fmt.Fprintf(w, " %6.3f", x)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Baseline != nil {
		r.Baseline.print(w, r.Layers)
	}
	if len(r.Decomposition) > 0 {
		fmt.Fprintln(w, "held-out |saliency| = ‖x‖·‖∂L/∂x‖·|cos|: Spearman of |saliency| with ‖∂L/∂x‖ and with |cos|, and mean |cos| (×1000)")
		for _, row := range []struct {
			name string
			val  func(train.Decomposition) float64
		}{{"|s| vs ‖∂L/∂x‖", func(d train.Decomposition) float64 { return d.WithGradNorm }},
			{"|s| vs |cos|", func(d train.Decomposition) float64 { return d.WithAlignment }},
			{"mean |cos| ×1000", func(d train.Decomposition) float64 { return 1000 * d.MeanAlignment }}} {
			fmt.Fprintf(w, "%-30s", row.name)
			for _, d := range r.Decomposition {
				fmt.Fprintf(w, " %6.3f", row.val(d))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "calibration %.0f s, training %.0f s, total %.0f s\n", r.CalibrationSeconds, r.TrainingSeconds, r.TotalSeconds)
}
