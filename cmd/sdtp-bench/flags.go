package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/internal/cliflag"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/sdtp"
)

// config is the command line, checked by parseFlags.
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
	keepRatiosSet        bool
	pruneLayers          [][]int // nil entries: the default schedule's layers
	decodeTokens         int
	ignoreEOS            bool
	predictors           string
	onnxProvider         string
	json                 bool
	kvPolicies           []string
	kvBudget             float64
	schedule             string // preset of every pruning mode; "": retrieval for sdtp, paper for the rest
	span                 int    // sdtp.Schedule.SpanKernel of the pruning modes, when spanSet
	spanTrail            int    // sdtp.Schedule.SpanTrail of the pruning modes, when spanTrailSet
	spanEcho             int    // sdtp.Schedule.SpanEcho of the pruning modes, when spanEchoSet
	spanTrailSentence    bool   // sdtp.Schedule.SpanTrailSentence of the pruning modes, when spanTrailSentenceSet
	spanEchoHops         int    // sdtp.Schedule.SpanEchoHops of the pruning modes, when spanEchoHopsSet
	spanEchoFirst        bool   // sdtp.Schedule.SpanEchoFirst of the pruning modes, when spanEchoFirstSet
	spanSentences        bool   // sdtp.Schedule.SpanSentences of the pruning modes, when spanSentencesSet
	spanSet              bool
	spanTrailSet         bool
	spanEchoSet          bool
	spanTrailSentenceSet bool
	spanEchoHopsSet      bool
	spanEchoFirstSet     bool
	spanSentencesSet     bool
	sameWork             []sameWorkSpec

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
			"attention-acc (question attention accumulated over layers; -mean and -top2 pool heads otherwise), hybrid (learned + attention-acc), random, attention, dense, llamacpp; "+
			"with --quality also oracle (the continuation's own attention: a reference, not a method)")
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
	fs.StringVar(&c.schedule, "schedule", "", "schedule preset of every pruning mode: paper (10 stages × 0.9, or learned predictors' trained ones) or retrieval (the same prefill work in one cut at 0.4 of the depth, span 7, trail 48 to the sentence's end, echo 5 with 3 hops ranked first, whole sentences when asked) (default: retrieval for sdtp, paper for the others)")
	fs.StringVar(&c.onnxProvider, "onnx-provider", "cpu", "ONNX Runtime execution provider: cpu, cuda, coreml, auto")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	fs.StringSliceVar(&c.kvPolicies, "kv-policy", []string{sdtp.KVNone},
		"KV-cache policies after each staged prefill, a list runs each: none, streaming, h2o, snapkv (docs/KV.md)")
	fs.Float64Var(&c.kvBudget, "kv-budget", 0.4, "cells per layer under --kv-policy: a fraction of the prompt if <= 1, else tokens")
	fs.IntVar(&c.span, "span", 0, "max-pool scores over this many neighbouring live tokens before each selection (odd; SnapKV 7, SpecPrefill 13; 0 = none) (default: the schedule's: retrieval 7, paper none)")
	fs.IntVar(&c.spanTrail, "span-trail", 0, "also lend each token's score to this many following live tokens before each selection (0 = none) (default: the schedule's: retrieval 48, paper none)")
	fs.BoolVar(&c.spanTrailSentence, "span-trail-sentence", false, "stop each trail at the end of its token's sentence (a token holding '.', '!', '?' or a newline) (default: the schedule's: retrieval true, paper false)")
	fs.IntVar(&c.spanEcho, "span-echo", 0, "give the live tokens that end the same run of this many tokens, a run the question (the prompt's last 32 tokens) repeats, their best score before each selection (0 = none; at least 2) (default: the schedule's: retrieval 5, paper none)")
	fs.IntVar(&c.spanEchoHops, "span-echo-hops", 0, "follow the facts that hold an echo through up to this many further facts sharing a rare 3-token name with them, and keep each fact of such a chain whole (0 = none; needs an echo) (default: the schedule's: retrieval 3, paper none)")
	fs.BoolVar(&c.spanEchoFirst, "span-echo-first", false, "rank the tokens that end an echo above every other token before each selection (needs an echo); =false: at the best copy's score (default: the schedule's: retrieval true, paper false)")
	fs.BoolVar(&c.spanSentences, "span-sentences", false, "keep or drop each sentence of at most 64 tokens whole, at its best token's score, before each selection, when the prompt's last 32 tokens ask a question (hold a '?'); =false: token by token (default: the schedule's: retrieval true, paper false)")
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
	c.spanSet, c.spanTrailSet, c.spanEchoSet = fs.Changed("span"), fs.Changed("span-trail"), fs.Changed("span-echo")
	c.spanTrailSentenceSet = fs.Changed("span-trail-sentence")
	c.spanEchoHopsSet = fs.Changed("span-echo-hops")
	c.spanEchoFirstSet, c.spanSentencesSet = fs.Changed("span-echo-first"), fs.Changed("span-sentences")
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
	if slices.Contains(c.modes, modeOracle) && c.kind() != report.KindQuality {
		return c, fmt.Errorf("mode %s prunes by the continuation's own attention: --quality runs only", modeOracle)
	}
	if err := sdtp.ValidateSpanKernel(c.span); err != nil {
		return c, fmt.Errorf("--span: %w", err)
	}
	if err := sdtp.ValidateSpanTrail(c.spanTrail); err != nil {
		return c, fmt.Errorf("--span-trail: %w", err)
	}
	if err := sdtp.ValidateSpanEcho(c.spanEcho); err != nil {
		return c, fmt.Errorf("--span-echo: %w", err)
	}
	if c.spanEchoHops < 0 {
		return c, fmt.Errorf("--span-echo-hops: %w", sdtp.ValidateEchoHops(c.spanEchoHops, 0))
	}
	pruning := slices.ContainsFunc(c.modes, func(m string) bool { return m != "llamacpp" && m != "dense" })
	for _, f := range []string{"span", "span-trail", "span-trail-sentence", "span-echo", "span-echo-hops", "span-echo-first", "span-sentences", "schedule"} {
		if fs.Changed(f) && !pruning {
			return c, fmt.Errorf("--%s needs a pruning mode in --modes", f)
		}
	}
	return c, nil
}

// benchModes are the modes --modes accepts.
var benchModes = []string{"llamacpp", "dense", "sdtp", "learned", "random", "attention", "sdtp-onnx", "sdtp-gguf",
	"attention-acc", "attention-acc-mean", "attention-acc-top2", "hybrid", modeOracle}

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
