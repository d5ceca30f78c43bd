// Command sdtp-bench compares prefill modes side by side in one process:
// stock llama_decode ("llamacpp"), the staged engine without pruning
// ("dense"), and pruning ("sdtp", "learned", "random", "attention", …;
// docs/HYBRID.md). Modes are interleaved run by run; each figure is the median
// of --repeat runs after one warm-up. --keep-ratios and --prune-layers
// sweep the pruning modes over schedules; `sdtp-bench report` turns --json
// results into docs/BENCHMARKS.md with plots; `sdtp-bench server-load URL`
// load-tests a running sdtp-server (docs/SERVER.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/internal/cliflag"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/numeric"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/predictors"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

type config struct {
	model        string
	promptTokens []int
	text         string
	textFrom     float64
	textTo       float64
	modes        []string
	repeat       int
	threads      int
	keepRatios   []float64
	// keepRatiosSet: --keep-ratios was given, so learned predictors use
	// it instead of the ratios they were trained with.
	keepRatiosSet bool
	pruneLayers   [][]int // nil entries: the default schedule's layers
	decodeTokens  int
	ignoreEOS     bool
	predictors    string
	onnxProvider  string
	json          bool
	kvPolicies    []string
	kvBudget      float64
	schedule      string // preset of every pruning mode; "": retrieval for sdtp, paper for the rest
	span          int    // sdtp.Schedule.SpanKernel of the pruning modes, when spanSet
	spanTrail     int    // sdtp.Schedule.SpanTrail of the pruning modes, when spanTrailSet
	spanSet       bool
	spanTrailSet  bool
	sameWork      []sameWorkSpec

	quality       bool
	contextTokens int
	contTokens    int
	samples       int
	seed          uint64

	passkey  bool
	haystack string
	lengths  []int
	depths   []float64
	trials   int

	mc       string
	mcLabels string
	shots    int
	mcItems  int

	chat      bool
	doc       string
	questions []string

	fid fidelityConfig
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sdtp-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.model, "model", cache.DefaultModel(), "GGUF model file, or a known model name ("+strings.Join(fetch.Names(), ", ")+"), fetched if missing")
	fs.IntSliceVar(&c.promptTokens, "prompt-tokens", []int{512, 2048, 4096}, "prompt lengths")
	fs.StringVar(&c.text, "text", "", "prompt source text (default: text the model generates itself)")
	fs.Float64Var(&c.textFrom, "text-from", 0, "use --text and --haystack from this fraction of their length (e.g. 0.7: the part sdtp-train --text-to 0.7 held out)")
	fs.Float64Var(&c.textTo, "text-to", 1, "… up to this fraction")
	fs.StringSliceVar(&c.modes, "modes", []string{"llamacpp", "dense", "sdtp", "random", "attention"},
		"modes to compare: sdtp (learned predictors fused with question attention at the retrieval schedule; attention-acc without predictors), "+
			"learned (the predictors alone: the paper's SDTP), sdtp-onnx and sdtp-gguf (the same predictors through ONNX Runtime and in-graph), "+
			"attention-acc (question attention accumulated over layers; -mean and -top2 pool heads otherwise), hybrid (learned + attention-acc), random, attention, dense, llamacpp")
	fs.IntVar(&c.repeat, "repeat", 3, "measured runs per mode and length (after one warm-up)")
	fs.IntVar(&c.threads, "threads", bridge.MaxThreads(), "CPU threads (default, 0 or -1: cores, or SDTP_THREADS)")
	fs.Float64SliceVar(&c.keepRatios, "keep-ratios", []float64{sdtp.DefaultKeepRatio},
		"keep ratio per stage; a list runs every pruning mode at each (learned predictors keep their trained ratios unless this is given)")
	var pruneLayers []string
	fs.StringArrayVar(&pruneLayers, "prune-layers", []string{"default"},
		"pruning layers: \"default\" or a list like 3,6,9; repeat the flag or separate lists with ';' to sweep (learned predictors: default = their own layers, a list must be a subset of them)")
	var sameWork []string
	fs.StringArrayVar(&sameWork, "same-work", nil,
		"also run each pruning mode at schedules of its default schedule's prefill work: \"tilt=T\" (T in [0,1): prune less early, more late), \"from=L\" (start at layer L), \"stages=N\" (only the first N of those stages; from=L,stages=1 is one cut at layer L), or several joined by ','; repeat or separate with ';'")
	// --keep-ratio (one value) is what sdtp-run calls it.
	fs.SetNormalizeFunc(func(_ *flag.FlagSet, name string) flag.NormalizedName {
		if name == "keep-ratio" {
			name = "keep-ratios"
		}
		return flag.NormalizedName(name)
	})
	fs.IntVar(&c.decodeTokens, "decode-tokens", 32, "greedy tokens decoded after each prefill (decode speed and parity)")
	fs.StringVar(&c.predictors, "predictors", "", "learned predictors (DIR with predictors.json) for modes sdtp, learned and hybrid; default: heads inside the GGUF, MODEL.predictors/, the shipped set for the model (mode sdtp without any: question attention alone)")
	fs.StringVar(&c.schedule, "schedule", "", "schedule preset of every pruning mode: paper (10 stages × 0.9, or learned predictors' trained ones) or retrieval (the same prefill work in one cut at 0.4 of the depth, span 7, trail 32) (default: retrieval for sdtp, paper for the others)")
	fs.StringVar(&c.onnxProvider, "onnx-provider", "cpu", "ONNX Runtime execution provider: cpu, cuda, coreml, auto")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.StringSliceVar(&c.kvPolicies, "kv-policy", []string{sdtp.KVNone},
		"KV-cache policies after each staged prefill, a list runs each: none, streaming, h2o, snapkv (docs/KV.md)")
	fs.Float64Var(&c.kvBudget, "kv-budget", 0.4, "cells per layer under --kv-policy: a fraction of the prompt if <= 1, else tokens")
	fs.IntVar(&c.span, "span", 0, "max-pool scores over this many neighbouring live tokens before each selection (odd; SnapKV 7, SpecPrefill 13; 0 = none) (default: the schedule's: retrieval 7, paper none)")
	fs.IntVar(&c.spanTrail, "span-trail", 0, "also lend each token's score to this many following live tokens before each selection (0 = none) (default: the schedule's: retrieval 32, paper none)")
	fs.BoolVar(&c.quality, "quality", false, "measure continuation quality (ppl, KL and top-1 vs dense) on --text instead of speed")
	fs.IntVar(&c.contextTokens, "context-tokens", 2048, "quality: context (prefill) length")
	fs.IntVar(&c.contTokens, "continuation-tokens", 128, "quality: teacher-forced continuation length")
	fs.IntVar(&c.samples, "samples", 16, "quality: windows of --text")
	fs.Uint64Var(&c.seed, "seed", 1, "seed for --quality windows, --passkey keys and the --ruler/--qa prompts")
	fs.BoolVar(&c.passkey, "passkey", false, "passkey retrieval: a 5-digit key hidden in --haystack text, asked for at the end")
	fs.StringVar(&c.haystack, "haystack", "", "passkey, ruler: filler text file, plain or JSON {\"text\": ...} (ruler default: the Paul Graham essays of make data)")
	fs.IntSliceVar(&c.lengths, "lengths", []int{1024, 2048, 4096}, "passkey, ruler, qa: prompt lengths")
	fs.Float64SliceVar(&c.depths, "depths", []float64{0.1, 0.3, 0.5, 0.7, 0.9}, "passkey: where the key sits (fraction of the prompt)")
	fs.IntVar(&c.trials, "trials", 2, "passkey: keys per length and depth")
	fs.StringVar(&c.mc, "mc", "", "multiple-choice accuracy on a JSONL file (ARC/COPA {query,choices,gold}, WinoGrande, PIQA)")
	fs.StringVar(&c.mcLabels, "mc-labels", "", "mc: labels file for PIQA-style items")
	fs.IntVar(&c.shots, "shots", 5, "mc: solved examples from the same file before each question")
	fs.IntVar(&c.mcItems, "mc-items", 100, "mc: questions to evaluate (the first ones in the file)")
	fs.BoolVar(&c.chat, "chat", false, "a scripted conversation (--doc with the first of --questions, one question per later turn) in every mode, per-turn prefill latency vs llamacpp")
	fs.StringVar(&c.doc, "doc", "docs/examples/frank-headlam.txt", "chat: the document of the first turn")
	fs.StringArrayVar(&c.questions, "questions", defaultChatQuestions, "chat: one question per turn (repeat the flag)")
	fs.BoolVar(&c.ignoreEOS, "ignore-eos", false, "chat: every answer is --decode-tokens long in every mode, so turn latencies compare equal work")
	c.fid.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := c.fid.check(&c, fs); err != nil {
		return c, err
	}
	if c.chat && len(c.questions) == 0 {
		return c, errors.New("--chat needs --questions")
	}
	c.keepRatiosSet = fs.Changed("keep-ratios")
	c.spanSet, c.spanTrailSet = fs.Changed("span"), fs.Changed("span-trail")
	if c.schedule != "" {
		if err := sdtp.ValidatePreset(c.schedule); err != nil {
			return c, fmt.Errorf("--schedule %q: %w", c.schedule, err)
		}
	}
	if err := cliflag.RefuseEmpty(fs, "model", "text", "haystack", "mc", "mc-labels", "predictors", "onnx-provider", "records", "qa-data"); err != nil {
		return c, err
	}
	if err := refuseOtherKinds(fs, c.kind()); err != nil {
		return c, err
	}
	for _, k := range c.keepRatios {
		if !(k > 0 && k <= 1) {
			return c, fmt.Errorf("--keep-ratios %v: a keep ratio (fraction of live tokens each stage keeps) must be in (0, 1]", k)
		}
	}
	if c.threads == 0 || c.threads == -1 { // llama.cpp's -t -1: all cores
		c.threads = bridge.MaxThreads()
	}
	if fs.Changed("kv-budget") && !slices.ContainsFunc(c.kvPolicies, func(p string) bool { return p != sdtp.KVNone }) {
		return c, errors.New("--kv-budget needs a --kv-policy other than none")
	}
	var err error
	if c.pruneLayers, err = parsePruneLayers(pruneLayers); err != nil {
		return c, err
	}
	if c.sameWork, err = parseSameWork(sameWork); err != nil {
		return c, err
	}
	if len(c.sameWork) > 0 && !slices.ContainsFunc(c.modes, func(m string) bool { return m != "llamacpp" && m != "dense" }) {
		return c, errors.New("--same-work needs a pruning mode in --modes")
	}
	if c.textFrom < 0 || c.textTo > 1 || c.textFrom >= c.textTo {
		return c, fmt.Errorf("--text-from %g and --text-to %g must satisfy 0 <= from < to <= 1", c.textFrom, c.textTo)
	}
	if c.quality && (c.text == "" || c.contextTokens < 16 || c.contTokens < 2 || c.samples < 1) {
		return c, errors.New("--quality needs --text, --context-tokens >= 16, --continuation-tokens >= 2 and --samples >= 1")
	}
	if c.passkey && (c.haystack == "" || c.trials < 1 || len(c.lengths) == 0 || len(c.depths) == 0) {
		return c, errors.New("--passkey needs --haystack, --trials >= 1, --lengths and --depths")
	}
	for _, d := range c.depths {
		if d < 0 || d > 1 {
			return c, fmt.Errorf("depth %v must be in [0, 1]", d)
		}
	}
	if c.mc != "" && (c.shots < 0 || c.mcItems < 1) {
		return c, errors.New("--shots must not be negative and --mc-items must be positive")
	}
	if c.repeat < 1 || c.decodeTokens < 1 || c.threads < 1 || len(c.promptTokens) == 0 {
		return c, errors.New("--repeat, --decode-tokens, --threads must be positive and --prompt-tokens non-empty")
	}
	for _, n := range c.promptTokens {
		if n < 16 {
			return c, fmt.Errorf("prompt length %d is too short to prune", n)
		}
	}
	for _, p := range c.kvPolicies {
		if _, err := sdtp.NewKVLimiter(nil, p, c.kvBudget); err != nil || p == "" {
			return c, fmt.Errorf("--kv-policy %q / --kv-budget %v: %v", p, c.kvBudget, err)
		}
	}
	for _, m := range c.modes {
		if !slices.Contains(benchModes, m) {
			return c, fmt.Errorf("unknown mode %q (%s)", m, strings.Join(benchModes, ", "))
		}
	}
	if err := sdtp.ValidateSpanKernel(c.span); err != nil {
		return c, fmt.Errorf("--span: %w", err)
	}
	if err := sdtp.ValidateSpanTrail(c.spanTrail); err != nil {
		return c, fmt.Errorf("--span-trail: %w", err)
	}
	pruning := slices.ContainsFunc(c.modes, func(m string) bool { return m != "llamacpp" && m != "dense" })
	for _, f := range []string{"span", "span-trail", "schedule"} {
		if fs.Changed(f) && !pruning {
			return c, fmt.Errorf("--%s needs a pruning mode in --modes", f)
		}
	}
	return c, nil
}

// benchModes are the modes --modes accepts.
var benchModes = []string{"llamacpp", "dense", "sdtp", "learned", "random", "attention", "sdtp-onnx", "sdtp-gguf",
	"attention-acc", "attention-acc-mean", "attention-acc-top2", "hybrid"}

// bench holds the model and one context/engine for all runs.
type bench struct {
	cfg          config
	model        *bridge.Model
	ctx          *bridge.Context
	engine       *bridge.Engine
	shape        sdtp.Shape
	vars         []variant     // the modes over the sweeps; a row each
	onnxSet      *onnx.Set     // --predictors through ONNX Runtime
	heads        sdtp.Scorer   // in-graph heads (from --predictors or the GGUF)
	learnedFrom  string        // where the learned predictors were found (predictors.Source.From)
	hybrid       sdtp.Scorer   // mode hybrid: the learned predictors (ONNX if given, else heads) fused with attention-acc
	learnedSched sdtp.Schedule // the learned predictors' schedule
	// predictorHash identifies --predictors' files in fidelity records.
	predictorHash predictorHash
	log           io.Writer
}

// sample is one run of one mode.
type sample struct {
	prefill   time.Duration
	predictor time.Duration
	decode    time.Duration
	logits    []float32
	cont      []int32
	perLyr    []int
	live      [][]int32
	kv        int64
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return runReport(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "server-load" {
		return runServerLoad(args[1:], stdout, stderr)
	}
	started := time.Now()
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.model, err = fetch.ResolveModel(c.model, stderr); err != nil {
		return err
	}
	if c.chat {
		return runChat(c, args, stdout, stderr)
	}
	maxN := slices.Max(c.promptTokens)
	nCtx := maxN + c.decodeTokens + 16
	if c.quality {
		maxN = c.contextTokens + c.contTokens + 1 // the whole text is tokenized below
		nCtx = maxN + 16
	}
	if c.passkey {
		nCtx = slices.Max(c.lengths) + 16
	}
	if c.kind() == report.KindFidelity {
		nCtx = slices.Max(c.lengths) + fidelityMaxAnswer + 16
	}
	if c.mc != "" {
		nCtx = 8192
	}
	m, err := bridge.LoadModel(c.model, bridge.ModelParams{UseMMap: true})
	if err != nil {
		return err
	}
	defer m.Free()
	if _, ok := bridge.StagedArch(m); !ok {
		return fmt.Errorf("architecture %s is not staged", m.Arch())
	}
	ctx, err := m.NewContext(bridge.ContextParams{NCtx: nCtx, NBatch: 2048, NUBatch: 512, Threads: c.threads})
	if err != nil {
		return err
	}
	defer ctx.Free()
	eng, err := ctx.NewEngine(nCtx, c.threads)
	if err != nil {
		return err
	}
	defer eng.Free()
	b := &bench{cfg: c, model: m, ctx: ctx, engine: eng, log: stderr}
	layers, nEmbd, nVocab := eng.Shape()
	b.shape = sdtp.Shape{Layers: layers, NEmbd: nEmbd, NVocab: nVocab}
	defSched, err := sdtp.DefaultSchedule(m.NLayer(), sdtp.DefaultKeepRatio)
	if err != nil {
		return err
	}
	if err := b.loadLearned(); err != nil {
		return err
	}
	if b.vars, err = b.variants(m.NLayer()); err != nil {
		return err
	}
	rep := report.Run{Kind: c.kind(), Command: command(args), Date: started.UTC().Format(time.RFC3339),
		Model: m.Desc(), ModelFile: filepath.Base(c.model), Threads: c.threads, BuildFlags: buildFlags(),
		CPU: bridge.SystemInfo(), CPUModel: cpuModel(), Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		DefaultKeepRatio: sdtp.DefaultKeepRatio, DefaultPruneLayers: defSched.Layers, SDTPScorer: b.sdtpMode(defSched, m.NLayer())}
	switch rep.Kind {
	case report.KindFidelity:
		rep.PromptFormat, rep.AnswerCommits, rep.Results, err = b.fidelity()
	case report.KindMC:
		rep.Results, err = b.multipleChoice()
	case report.KindPasskey:
		rep.PasskeyDepths = c.depths
		rep.Results, err = b.passkey()
	case report.KindQuality:
		var all []int32
		if all, err = b.textTokens(); err == nil {
			rep.Results, err = b.quality(all)
		}
	default:
		var prompt []int32
		if prompt, err = b.promptTokens(maxN); err != nil {
			return err
		}
		for _, n := range c.promptTokens {
			rows, err := b.compare(prompt[:n])
			if err != nil {
				return err
			}
			rep.Results = append(rep.Results, rows...)
		}
	}
	if err != nil {
		return err
	}
	rep.WallS = time.Since(started).Seconds()
	return b.print(stdout, rep)
}

// kindFlags are the flags only some kinds of run read.
var kindFlags = map[string][]string{
	"prompt-tokens": {report.KindSpeed}, "repeat": {report.KindSpeed, kindChat}, "decode-tokens": {report.KindSpeed, kindChat},
	"doc": {kindChat}, "questions": {kindChat}, "ignore-eos": {kindChat},
	"text":           {report.KindSpeed, report.KindQuality},
	"context-tokens": {report.KindQuality}, "continuation-tokens": {report.KindQuality}, "samples": {report.KindQuality},
	"haystack": {report.KindPasskey, report.KindFidelity}, "lengths": {report.KindPasskey, report.KindFidelity},
	"depths": {report.KindPasskey}, "trials": {report.KindPasskey},
	"mc-labels": {report.KindMC}, "shots": {report.KindMC}, "mc-items": {report.KindMC},
	"seed":  {report.KindQuality, report.KindPasskey, report.KindMC, report.KindFidelity},
	"tasks": {report.KindFidelity}, "prompts": {report.KindFidelity}, "records": {report.KindFidelity}, "records-only": {report.KindFidelity},
	"prompt-format": {report.KindFidelity}, "system": {report.KindFidelity}, "qa-data": {report.KindFidelity},
}

// refuseOtherKinds refuses a flag that this kind of run would ignore
// (e.g. --depths without --passkey).
func refuseOtherKinds(fs *flag.FlagSet, kind string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if kinds, ok := kindFlags[f.Name]; ok && err == nil && !slices.Contains(kinds, kind) {
			err = fmt.Errorf("--%s applies to %s runs, not to this %s run", f.Name, strings.Join(kinds, "/"), kind)
		}
	})
	return err
}

// kind is what the flags ask to measure.
func (c config) kind() string {
	switch {
	case c.chat:
		return kindChat
	case c.fid.ruler || c.fid.qa != "":
		return report.KindFidelity
	case c.mc != "":
		return report.KindMC
	case c.passkey:
		return report.KindPasskey
	case c.quality:
		return report.KindQuality
	}
	return report.KindSpeed
}

func (b *bench) print(stdout io.Writer, rep report.Run) error {
	if b.cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	switch rep.Kind {
	case report.KindFidelity:
		printFidelity(stdout, rep)
	case report.KindMC:
		printMC(stdout, rep)
	case report.KindPasskey:
		printPasskey(stdout, rep)
	case report.KindQuality:
		printQuality(stdout, rep)
	default:
		printTable(stdout, rep)
	}
	return nil
}

// textTokens tokenizes --text (its --text-from/--text-to portion).
func (b *bench) textTokens() ([]int32, error) {
	raw, err := b.readText(b.cfg.text)
	if err != nil {
		return nil, err
	}
	return b.model.Tokenize(string(raw), true, false)
}

// readText reads the --text-from/--text-to portion of a text file.
func (b *bench) readText(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return train.Portion(raw, b.cfg.textFrom, b.cfg.textTo), nil
}

// loadLearned loads the learned predictors where the library finds them
// (predictors.Locate): --predictors, heads inside the GGUF,
// MODEL.predictors/, or the shipped set for the model. An ONNX set runs
// both through ONNX Runtime and as in-graph heads.
func (b *bench) loadLearned() error {
	src, err := predictors.Locate(b.cfg.predictors, predictors.Model{Path: b.cfg.model, Arch: b.model.Arch(), NLayer: b.model.NLayer(), NEmbd: b.model.NEmbd()})
	if err != nil {
		return err
	}
	b.cfg.predictors, b.learnedFrom = src.Dir, src.From
	h := src.Heads
	if src.Kind == predictors.ScorerONNX {
		if b.predictorHash, err = hashPredictors(b.cfg.predictors); err != nil {
			return err
		}
		if b.onnxSet, err = onnx.LoadFor(b.cfg.predictors, b.cfg.model, b.model.Arch(), b.model.NLayer(), b.model.NEmbd(), onnx.Options{Provider: b.cfg.onnxProvider}); err != nil {
			return err
		}
		if h, err = gguf.FromONNX(b.onnxSet); err != nil {
			return err
		}
	}
	if h != nil {
		b.learnedSched = h.Schedule()
		if b.heads, err = h.Scorer(b.engine); err != nil {
			return err
		}
	}
	for _, m := range b.cfg.modes {
		if (m == "sdtp-onnx" && b.onnxSet == nil) || ((m == "sdtp-gguf" || m == "hybrid" || m == "learned") && b.heads == nil) {
			return fmt.Errorf("mode %s needs learned predictors: --predictors DIR (or heads inside the GGUF for sdtp-gguf, learned and hybrid)", m)
		}
	}
	if h != nil && (slices.Contains(b.cfg.modes, "hybrid") || slices.Contains(b.cfg.modes, "sdtp")) {
		var learned sdtp.Scorer = b.heads
		if b.onnxSet != nil {
			learned = b.onnxSet
		}
		f := predictor.DefaultFusion(len(h.Layers))
		if h.Fusion != nil {
			f = *h.Fusion
		} else {
			fmt.Fprintln(b.log, predictor.DefaultFusionNote())
		}
		if b.hybrid, err = predictor.NewHybrid(learned, h.Layers, f); err != nil {
			return err
		}
	}
	return nil
}

// sdtpMode describes what mode sdtp runs (report.Run.SDTPScorer): its
// scorer, and its schedule when the preset is not the paper's default.
func (b *bench) sdtpMode(paper sdtp.Schedule, nLayer int) string {
	scorer := "question attention alone (no learned predictors for this model)"
	base := paper
	if b.heads != nil {
		scorer = b.sdtpScorer() + ", fused with the question attention"
		base = b.learnedSched
	}
	if b.cfg.preset("sdtp") != sdtp.ScheduleRetrieval {
		return scorer
	}
	s, err := sdtp.Preset(sdtp.ScheduleRetrieval, base, nLayer)
	if err != nil {
		return scorer // variants() has reported it
	}
	return fmt.Sprintf("%s, at the retrieval schedule: keep %.3f before layer %d, span %d, trail %d",
		scorer, s.KeepRatios[0], s.Layers[0], s.SpanKernel, s.SpanTrail)
}

// sdtpScorer says which learned predictors the learned modes prune with.
func (b *bench) sdtpScorer() string {
	switch {
	case b.onnxSet != nil:
		return fmt.Sprintf("learned predictors %s, %s (ONNX Runtime, %s)", b.learnedFrom, b.cfg.predictors, b.cfg.onnxProvider)
	case b.heads != nil:
		return "learned predictor heads inside the GGUF"
	}
	return "question attention alone (no learned predictors for this model)"
}

// scorerName names what prunes in a mode, as llama.SDTPStats.Scorer does
// (report.Row.Scorer): "" for the unpruned modes.
func (b *bench) scorerName(mode string) string {
	switch {
	case mode == "llamacpp" || mode == "dense":
		return ""
	case mode == "sdtp-onnx" || (mode == "learned" && b.onnxSet != nil):
		return predictors.ScorerONNX
	case mode == "sdtp-gguf" || mode == "learned":
		return predictors.ScorerGGUFHeads
	case mode == "random", strings.HasPrefix(mode, "attention-acc"):
		return mode
	case (mode == "hybrid" || mode == "sdtp") && b.onnxSet != nil:
		return "hybrid/" + predictors.ScorerONNX
	case mode == "hybrid" || (mode == "sdtp" && b.heads != nil):
		return "hybrid/" + predictors.ScorerGGUFHeads
	case mode == "sdtp":
		return "attention-acc"
	}
	return "attention"
}

// scorer returns a fresh scorer for a mode (the random one restarts from
// its seed, so every run and window drops the same draw).
func (b *bench) scorer(mode string) sdtp.Scorer {
	switch {
	case mode == "sdtp-onnx" || (mode == "learned" && b.onnxSet != nil):
		return &timed{Scorer: b.onnxSet}
	case mode == "sdtp-gguf" || mode == "learned":
		return b.heads
	case mode == "random":
		return predictor.NewRandom(1)
	case mode == "dense":
		return predictor.NewRandom(0) // never called: nothing is pruned
	case mode == "hybrid" || (mode == "sdtp" && b.hybrid != nil):
		return &timed{Scorer: b.hybrid}
	case mode == "sdtp" || strings.HasPrefix(mode, "attention-acc"):
		name := mode
		if mode == "sdtp" {
			name = "attention-acc" // sdtp without learned predictors
		}
		sc, err := predictor.New(name, 0)
		if err != nil {
			panic(err) // the names are registered by package predictor
		}
		return &timed{Scorer: sc}
	}
	return predictor.Attention{}
}

// timed measures the time a scorer spends scoring in Go (and ONNX
// Runtime); work the scorer asks of the graph (in-graph heads, layer
// attention) shows in the prefill time instead.
type timed struct {
	sdtp.Scorer
	spent time.Duration
	total *timed // where a per-prefill scorer's time adds up (ForPrefill)
}

func (t *timed) Score(in sdtp.ScoreInput) ([]float32, error) {
	start := time.Now()
	defer func() {
		sum := t
		if t.total != nil {
			sum = t.total
		}
		sum.spent += time.Since(start)
	}()
	return t.Scorer.Score(in)
}

// ForPrefill times the per-prefill scorer of a sdtp.PrefillScorer.
func (t *timed) ForPrefill(nPrompt int) sdtp.Scorer {
	if p, ok := t.Scorer.(sdtp.PrefillScorer); ok {
		return &timed{Scorer: p.ForPrefill(nPrompt), total: t}
	}
	return t
}

// headCost times the in-graph heads where they run, in a separate prefill
// (the pauses that timing needs would slow the timed one).
func (b *bench) headCost(sched sdtp.Schedule, prompt []int32) (time.Duration, error) {
	b.engine.TimeHeads(true)
	defer b.engine.TimeHeads(false)
	b.engine.HeadTime()
	if _, err := sdtp.Prefill(context.Background(), b.engine, b.heads, sched, prompt, 512); err != nil {
		return 0, err
	}
	return b.engine.HeadTime(), nil
}

// promptTokens tokenizes --text, or lets the model write its own text.
func (b *bench) promptTokens(n int) ([]int32, error) {
	if b.cfg.text != "" {
		toks, err := b.textTokens()
		if err != nil {
			return nil, err
		}
		if len(toks) < n {
			return nil, fmt.Errorf("%s has %d tokens, need %d", b.cfg.text, len(toks), n)
		}
		return toks[:n], nil
	}
	fmt.Fprintf(b.log, "generating a %d-token prompt with the model (use --text to skip)\n", n)
	smp, err := bridge.NewSampler(b.model, bridge.SamplerParams{Seed: 1, Temperature: 1, TopK: 40, TopP: 0.95, RepeatLastN: 64, RepeatPenalty: 1.1})
	if err != nil {
		return nil, err
	}
	defer smp.Free()
	toks, err := b.model.Tokenize("Chapter 1\n\n", true, false)
	if err != nil {
		return nil, err
	}
	b.ctx.Clear()
	if err := b.ctx.Decode(toks, 0, bridge.OutputLast); err != nil {
		return nil, err
	}
	for len(toks) < n {
		tok, err := smp.Sample(b.ctx, -1)
		if err != nil {
			return nil, err
		}
		if b.model.IsEOG(tok) {
			tok = toks[len(toks)-1] // keep going: a benchmark prompt needs no ending
		}
		toks = append(toks, tok)
		if err := b.ctx.Decode([]int32{tok}, len(toks)-1, bridge.OutputLast); err != nil {
			return nil, err
		}
	}
	return toks, nil
}

// compare runs every variant --repeat times (plus a warm-up), interleaved.
func (b *bench) compare(prompt []int32) ([]report.Row, error) {
	samples := make([][]sample, len(b.vars))
	ref := -1 // the llamacpp variant
	for r := 0; r <= b.cfg.repeat; r++ {
		for i, v := range b.vars {
			if v.mode == "llamacpp" {
				ref = i
			}
			s, err := b.runVariant(v, prompt)
			if err != nil {
				return nil, fmt.Errorf("%v at %d tokens: %w", v, len(prompt), err)
			}
			if r > 0 { // run 0 warms caches and pages in the weights
				samples[i] = append(samples[i], s)
			}
		}
		fmt.Fprintf(b.log, "%d tokens: run %d/%d done\n", len(prompt), r, b.cfg.repeat)
	}
	denseFLOPs := sdtp.DenseFLOPs(b.shape, len(prompt))
	var rows []report.Row
	for i, v := range b.vars {
		ss := samples[i]
		last := ss[len(ss)-1]
		prefill := median(ss, func(s sample) time.Duration { return s.prefill })
		decode := median(ss, func(s sample) time.Duration { return s.decode })
		predictorTime := median(ss, func(s sample) time.Duration { return s.predictor })
		row := v.row(len(prompt))
		row.PredictorMS = float64(predictorTime.Microseconds()) / 1000
		row.PrefillMS = float64(prefill.Microseconds()) / 1000
		row.DecodeTokS = float64(b.cfg.decodeTokens) / decode.Seconds()
		row.KeptTokensPerLayer, row.KVBytes = last.perLyr, last.kv
		if last.live != nil {
			row.FLOPsPrefill = sdtp.PrefillFLOPs(b.shape, last.live)
		} else {
			row.FLOPsPrefill = denseFLOPs
		}
		row.FLOPRatioVsDense = denseFLOPs / row.FLOPsPrefill
		if ref >= 0 {
			refLast := samples[ref][len(samples[ref])-1]
			row.Top1VsLlamaCpp = agreement(refLast.cont, last.cont)
			row.MaxAbsLogitDiff = numeric.MaxAbsDiff(refLast.logits, last.logits)
			row.SpeedupVsLlamaCpp = float64(median(samples[ref], func(s sample) time.Duration { return s.prefill })) / float64(prefill)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (b *bench) runVariant(v variant, prompt []int32) (sample, error) {
	if v.mode == "llamacpp" {
		return b.runLlamaCpp(prompt)
	}
	sc := b.scorer(v.mode)
	var s sample
	start := time.Now()
	pre, kv, err := b.prefill(v, sc, prompt)
	s.prefill = time.Since(start)
	if err != nil {
		return s, err
	}
	if t, ok := sc.(*timed); ok {
		s.predictor = t.spent
	} else if sc == b.heads {
		if s.predictor, err = b.headCost(v.sched, prompt); err != nil {
			return s, err
		}
	}
	s.logits, s.perLyr, s.kv = pre.Logits, pre.KeptPerLayer, b.engine.KVBytes()
	s.live = sdtp.LivePerLayer(v.sched, b.engine.NLayer(), pre.LivePositions)
	logits := pre.Logits
	start = time.Now()
	for i := range b.cfg.decodeTokens {
		tok := int32(numeric.Argmax(logits))
		s.cont = append(s.cont, tok)
		out, err := b.engine.Run(bridge.RunInput{First: 0, Last: b.engine.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(len(prompt) + i)}, WantLogits: true})
		if err == nil {
			err = kv.Enforce()
		}
		if err != nil {
			return s, err
		}
		logits = out.Logits
	}
	s.decode = time.Since(start)
	return s, nil
}

func (b *bench) runLlamaCpp(prompt []int32) (sample, error) {
	var s sample
	b.ctx.Clear()
	start := time.Now()
	if err := b.ctx.Decode(prompt, 0, bridge.OutputLast); err != nil {
		return s, err
	}
	s.prefill = time.Since(start)
	logits, err := b.ctx.Logits(-1)
	if err != nil {
		return s, err
	}
	s.logits = logits
	for range b.engine.NLayer() {
		s.perLyr = append(s.perLyr, len(prompt))
	}
	// The same cells as our dense cache: n tokens in every layer.
	layers, _, _ := b.engine.Shape()
	for _, L := range layers {
		s.kv += int64(len(prompt)) * int64(2*L.NHeadKV*L.HeadDim) * 2
	}
	start = time.Now()
	for i := range b.cfg.decodeTokens {
		tok := int32(numeric.Argmax(logits))
		s.cont = append(s.cont, tok)
		if err := b.ctx.Decode([]int32{tok}, len(prompt)+i, bridge.OutputLast); err != nil {
			return s, err
		}
		if logits, err = b.ctx.Logits(-1); err != nil {
			return s, err
		}
	}
	s.decode = time.Since(start)
	return s, nil
}

func printHeader(w io.Writer, rep report.Run) {
	fmt.Fprintf(w, "model: %s   threads: %d   build flags: %s\n\n", rep.Model, rep.Threads, rep.BuildFlags)
}

func printTable(w io.Writer, rep report.Run) {
	printHeader(w, rep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tokens\tmode\tlayers\tkeep\tKV budget\tprefill ms\tpredictor ms\tspeedup\tFLOP ratio\tlast-layer tokens\tdecode tok/s\tKV MiB\ttop1\tmax|Δlogit|\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%s\t%.1f\t%.2f\t%.2fx\t%.2fx\t%d\t%.1f\t%.1f\t%.3f\t%.3g\t\n", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, kvBudget(r),
			r.PrefillMS, r.PredictorMS, r.SpeedupVsLlamaCpp, r.FLOPRatioVsDense, r.KeptTokensPerLayer[len(r.KeptTokensPerLayer)-1], r.DecodeTokS,
			float64(r.KVBytes)/(1<<20), r.Top1VsLlamaCpp, r.MaxAbsLogitDiff)
	}
	tw.Flush()
}

func printPasskey(w io.Writer, rep report.Run) {
	printHeader(w, rep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "tokens\tmode\tlayers\tkeep\tprompts\taccuracy\t"
	for _, d := range rep.PasskeyDepths {
		head += fmt.Sprintf("depth %.1f\t", d)
	}
	fmt.Fprintln(tw, head)
	for _, r := range rep.Results {
		line := fmt.Sprintf("%d\t%s\t%s\t%.2f\t%d\t%.2f\t", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, r.Samples, r.PasskeyAcc)
		for _, a := range r.PasskeyDepthAcc {
			line += fmt.Sprintf("%.2f\t", a)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func printMC(w io.Writer, rep report.Run) {
	printHeader(w, rep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mean prompt\tmode\tlayers\tkeep\titems\taccuracy\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%d\t%.3f\t\n", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, r.Samples, r.MCAcc)
	}
	tw.Flush()
}

func printQuality(w io.Writer, rep report.Run) {
	printHeader(w, rep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "context\tmode\tlayers\tkeep\tKV budget\tsamples\tppl\tKL vs dense\ttop-1 vs dense\tpeak KV MiB\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%s\t%d\t%.3f\t%.4f\t%.3f\t%.2f\t\n", r.PromptTokens, r.Label(), r.Layers(), r.KeepRatio, kvBudget(r), r.Samples,
			r.PPL, r.KLVsDense, r.Top1VsDense, float64(r.KVBytes)/(1<<20))
	}
	tw.Flush()
}

// kvBudget is a row's KV budget, or "-" without a KV policy.
func kvBudget(r report.Row) string {
	if r.KVPolicy == "" {
		return "-"
	}
	return fmt.Sprint(r.KVBudget)
}

// buildFlags reports the CPU flags the binary's C code was compiled with.
func buildFlags() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var parts []string
	for _, s := range info.Settings {
		if s.Key == "CGO_CFLAGS" || s.Key == "CGO_CXXFLAGS" {
			parts = append(parts, s.Key+"="+s.Value)
		}
	}
	if len(parts) == 0 {
		return "none (baseline CPU: slow)"
	}
	return strings.Join(parts, " ")
}

func median(ss []sample, f func(sample) time.Duration) time.Duration {
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func agreement(a, b []int32) float64 {
	same := 0
	for i := range a {
		if i < len(b) && a[i] == b[i] {
			same++
		}
	}
	return float64(same) / float64(len(a))
}
