// Command sdtp-run generates a continuation of a prompt with a GGUF model,
// answers a question about a document (--doc, doc.go), or chats (--chat,
// chat.go).
//
//	sdtp-run -p "The capital of France is" -n 32
//	sdtp-run -f prompt.txt --json
//	sdtp-run -m qwen2.5-coder-0.5b-instruct --chat-template --system "Be brief." -p "What is 2+2?"
//	sdtp-run -m qwen2.5-coder-0.5b-instruct --doc article.txt -p "Where was he born?"
//	sdtp-run -m qwen2.5-coder-0.5b-instruct --chat --doc article.txt
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	flag "github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/internal/cliflag"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

type config struct {
	model      string
	prompt     string
	promptFile string
	nPredict   int
	threads    int
	ctxSize    int
	temp       float32
	topK       int
	topP       float32
	seed       int
	json       bool

	chatTemplate bool
	system       *string // --system, nil when not given
	doc          string  // --doc: document question answering (doc.go)
	chat         bool    // --chat: a conversation on stdin (chat.go)

	mode      string
	modeGiven bool // --mode on the command line, not the default
	// keepRatioGiven: --keep-ratio on the command line; pruningGiven: it,
	// --prune-layers or --predictors.
	keepRatioGiven, pruningGiven bool
	keepRatio                    float64
	pruneLayers                  []int
	explain                      bool
	explainHTML                  string
	predictors                   string
	provider                     string
	kvPolicy                     string
	kvBudget                     float64
	schedule                     string
	span                         int // 0: the schedule's; -1: none (typed as 0)
	spanTrail                    int // the same
	spanEcho                     int // the same
	spanEchoHops                 int // the same
	spanTrailSentence            bool
	spanTrailEnd                 string // llama.SDTPOptions.SpanTrailEnd: "" unless --span-trail-sentence was given
	spanEchoFirst                bool
	spanEchoRank                 string // llama.SDTPOptions.SpanEchoRank: "" unless --span-echo-first was given
	spanSentences                bool
	spanSentencesSetting         string // llama.SDTPOptions.SpanSentences: "" unless --span-sentences was given
}

// report is what --json prints.
type report struct {
	PromptTokens    int     `json:"prompt_tokens"`
	GeneratedTokens int     `json:"generated_tokens"`
	PrefillMS       float64 `json:"prefill_ms"`
	DecodeMS        float64 `json:"decode_ms"`
	Text            string  `json:"text"`
	Mode            string  `json:"mode"`
	KeptPerStage    []int   `json:"kept_per_stage,omitempty"`
	KeptPerLayer    []int   `json:"kept_per_layer,omitempty"`
	FLOPRatio       float64 `json:"flop_ratio,omitempty"`
	KVBytes         int64   `json:"kv_bytes,omitempty"`
	KVPolicy        string  `json:"kv_policy,omitempty"`
	KVLimit         int     `json:"kv_limit,omitempty"`      // cells per layer
	KVPeakBytes     int64   `json:"kv_peak_bytes,omitempty"` // the most the caches held while generating
	Scorer          string  `json:"scorer,omitempty"`        // what pruned: onnx, gguf-heads, attention, random
	ReusedTokens    int     `json:"reused_tokens"`           // prompt tokens served from the cache (earlier turns)
	KeptTokens      int     `json:"kept_tokens,omitempty"`   // prefilled tokens that reached the last layer
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-run:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sdtp-run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&c.model, "model", "m", cache.DefaultModel(), "GGUF model file, or a known model name ("+strings.Join(fetch.Names(), ", ")+"), fetched if missing")
	fs.StringVarP(&c.prompt, "prompt", "p", "", "prompt text")
	fs.StringVarP(&c.promptFile, "file", "f", "", "read the prompt from a file")
	fs.IntVarP(&c.nPredict, "n-predict", "n", 128, "tokens to generate (-1 = until end of text or full context)")
	fs.IntVarP(&c.threads, "threads", "t", 0, "CPU threads (0 or -1 = all cores)")
	fs.IntVarP(&c.ctxSize, "ctx-size", "c", 4096, "context window in tokens (0 = the model's training context)")
	fs.Float32Var(&c.temp, "temp", 0.8, "sampling temperature (0 = greedy)")
	fs.IntVar(&c.topK, "top-k", 40, "top-k sampling (0 = off)")
	fs.Float32Var(&c.topP, "top-p", 0.95, "top-p sampling (1 = off, 0 = the most likely token only)")
	fs.IntVar(&c.seed, "seed", -1, "sampling seed (-1 = random)")
	fs.BoolVar(&c.chatTemplate, "chat-template", false, "format the prompt as one user message with the model's chat template (instruct models)")
	system := fs.String("system", "", "a system message before the prompt (needs --chat-template)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object with the text, token counts and timings at the end")
	fs.StringVar(&c.mode, "mode", llama.ModeSDTP, "prefill: llamacpp (stock llama_decode), dense, sdtp (learned predictors fused with question attention at the retrieval schedule; question attention alone without predictors), "+
		"learned (learned predictors alone: the paper's SDTP), random, attention, attention-acc (question attention accumulated over layers), hybrid (learned predictors fused with attention-acc)")
	fs.StringVar(&c.schedule, "schedule", "", "pruning schedule: paper (10 stages × 0.9, or learned predictors' trained ones) or retrieval (the same prefill work in one cut at 0.4 of the depth, span 7, trail 48 to the sentence's end, echo 5 with 3 hops ranked first, whole sentences when asked) (default: retrieval in --mode sdtp, paper otherwise)")
	fs.Float64Var(&c.keepRatio, "keep-ratio", sdtp.DefaultKeepRatio, "fraction of live tokens kept at each pruning stage, in (0, 1] (default: the schedule's: 0.9, learned predictors' trained ratios, or the retrieval schedule's)")
	fs.IntSliceVar(&c.pruneLayers, "prune-layers", nil, "layers before which to prune, e.g. 4,7,10 (default: the schedule's: 10 stages scaled to the model's depth or learned predictors' own layers, one cut at 0.4 of the depth under retrieval; with predictors, a subset of theirs)")
	fs.StringVar(&c.predictors, "predictors", "", "learned predictors for --mode sdtp, learned or hybrid: a `DIR` with predictors.json (default: heads in the GGUF, MODEL.predictors/, or the set shipped for the model)")
	fs.StringVar(&c.provider, "onnx-provider", "cpu", "where ONNX predictors run: cpu, cuda, coreml, auto")
	fs.StringVar(&c.kvPolicy, "kv-policy", sdtp.KVNone, "KV-cache compression after the prefill and while generating: none, streaming, h2o, snapkv (staged modes; docs/KV.md)")
	fs.Float64Var(&c.kvBudget, "kv-budget", 0.4, "cells each layer's cache keeps under --kv-policy: a fraction of the prompt if <= 1, else tokens")
	fs.IntVar(&c.span, "span", 0, "max-pool scores over this many neighbouring live tokens before each selection, so kept tokens come in spans (odd; SnapKV 7, SpecPrefill 13; 0 = none) (default: the schedule's: retrieval 7, paper none)")
	fs.IntVar(&c.spanEcho, "span-echo", 0, "give the live tokens that end the same run of this many tokens, a run the question repeats, their best score before each selection, so every copy of an asked-about phrase survives (0 = none; at least 2) (default: the schedule's: retrieval 5, paper none)")
	fs.IntVar(&c.spanTrail, "span-trail", 0, "also lend each token's score to this many following live tokens before each selection, so a fact's value survives with the words that lead to it (0 = none) (default: the schedule's: retrieval 48, paper none)")
	fs.IntVar(&c.spanEchoHops, "span-echo-hops", 0, "follow the facts that hold an echo through up to this many further facts sharing a rare 3-token name with them, and keep each fact of such a chain whole (0 = none; needs an echo) (default: the schedule's: retrieval 3, paper none)")
	fs.BoolVar(&c.spanEchoFirst, "span-echo-first", false, "rank the tokens that end an echo above every other token before each selection (needs an echo); =false: at the best copy's score (default: the schedule's: retrieval true, paper false)")
	fs.BoolVar(&c.spanSentences, "span-sentences", false, "keep or drop each sentence of at most 64 tokens whole, at its best token's score, when the prompt's last 32 tokens ask a question (hold a '?'); =false: token by token (default: the schedule's: retrieval true, paper false)")
	fs.BoolVar(&c.spanTrailSentence, "span-trail-sentence", false, "stop each trail at the end of its token's sentence (a token holding '.', '!', '?' or a newline); =false: trails run their whole length (default: the schedule's: retrieval true, paper false)")
	fs.BoolVar(&c.explain, "explain", false, "print the prompt to stderr with pruned tokens dimmed by the stage that dropped them")
	fs.StringVar(&c.explainHTML, "explain-html", "", "write the same view as a self-contained HTML page to `FILE`")
	fs.StringVar(&c.doc, "doc", "", "answer the question -p about the document `FILE` (through the chat template; the prefill line goes to stderr)")
	fs.BoolVar(&c.chat, "chat", false, "chat: one user message per line of stdin (a REPL on a terminal; /reset, /stats, /quit); with --doc the document goes with the first message")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.modeGiven = fs.Changed("mode")
	if err := c.checkExplicit(fs); err != nil {
		return c, err
	}
	if c.doc != "" || c.chat {
		c.chatTemplate = true // both talk to an instruct model through its template
	}
	if fs.Changed("system") {
		if !c.chatTemplate {
			return c, errors.New("--system needs --chat-template (a system message exists only in a chat template)")
		}
		c.system = system
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (the prompt goes after -p)", fs.Arg(0))
	}
	// -p "" is an empty prompt (BOS alone), as in llama-cli.
	switch given := fs.Changed("prompt"); {
	case c.chat && (given || fs.Changed("file")):
		return c, errors.New("--chat reads its messages from stdin; -p and -f do not apply")
	case c.chat && (c.explain || c.explainHTML != ""):
		return c, errors.New("--explain and --explain-html show one prompt; they do not apply to --chat")
	case c.chat:
	case given && fs.Changed("file"):
		return c, errors.New("give either --prompt or --file, not both")
	case fs.Changed("file"):
		b, err := os.ReadFile(c.promptFile)
		if err != nil {
			return c, err
		}
		c.prompt = string(b)
	case !given && c.doc != "":
		return c, errors.New("--doc needs the question: -p TEXT")
	case !given:
		return c, errors.New("no prompt: use -p TEXT or -f FILE")
	}
	return c, nil
}

// checkExplicit refuses values a user typed that would otherwise be read
// as "unset" or ignored, with llama-cli's meanings for -1 (-n -1: no limit,
// -n -2: until the context is full, -t -1: all cores).
func (c *config) checkExplicit(fs *flag.FlagSet) error {
	if err := cliflag.RefuseEmpty(fs, "model", "file", "mode", "schedule", "kv-policy", "predictors", "onnx-provider", "explain-html"); err != nil {
		return err
	}
	switch {
	case c.nPredict == 0:
		return errors.New("--n-predict 0 generates nothing; -1 generates until the end of text or a full context")
	case c.nPredict < -2:
		return fmt.Errorf("--n-predict %d: want a token count, -1 (until end of text) or -2 (until the context is full)", c.nPredict)
	case c.threads < -1:
		return fmt.Errorf("--threads %d: want a count, or 0 or -1 for all cores", c.threads)
	case c.ctxSize < 0:
		return fmt.Errorf("--ctx-size %d is negative (0 = the model's training context)", c.ctxSize)
	case !(c.keepRatio > 0 && c.keepRatio <= 1):
		return fmt.Errorf("--keep-ratio %v: the keep ratio (fraction of live tokens each stage keeps) must be in (0, 1]", c.keepRatio)
	case fs.Changed("kv-budget") && c.kvPolicy == sdtp.KVNone:
		return errors.New("--kv-budget needs a --kv-policy (streaming, h2o, snapkv)")
	case fs.Changed("onnx-provider") && !llama.UsesPredictors(c.mode):
		return fmt.Errorf("--onnx-provider applies to ONNX predictors in --mode sdtp, learned or hybrid, not --mode %s", c.mode)
	case (c.explain || c.explainHTML != "") && c.mode == llama.ModeLlamaCpp:
		return errors.New("--explain needs a staged mode (dense or a pruning mode) on a staged architecture")
	case c.span < 0 || c.spanTrail < 0 || c.spanEcho < 0:
		return fmt.Errorf("--span %d / --span-trail %d / --span-echo %d: want 0 (none) or a token count", c.span, c.spanTrail, c.spanEcho)
	case c.spanEchoHops < 0:
		return fmt.Errorf("--span-echo-hops %d: want 0 (none) or a number of links", c.spanEchoHops)
	}
	// A typed 0 means no spans, which the library spells -1 (its 0 is
	// the schedule's own).
	if fs.Changed("span") && c.span == 0 {
		c.span = -1
	}
	if fs.Changed("span-trail") && c.spanTrail == 0 {
		c.spanTrail = -1
	}
	if fs.Changed("span-echo") && c.spanEcho == 0 {
		c.spanEcho = -1
	}
	if fs.Changed("span-echo-hops") && c.spanEchoHops == 0 {
		c.spanEchoHops = -1
	}
	if fs.Changed("span-trail-sentence") {
		c.spanTrailEnd = map[bool]string{true: llama.TrailEndSentence, false: llama.TrailEndOpen}[c.spanTrailSentence]
	}
	if fs.Changed("span-echo-first") {
		c.spanEchoRank = map[bool]string{true: llama.EchoRankFirst, false: llama.EchoRankShared}[c.spanEchoFirst]
	}
	if fs.Changed("span-sentences") {
		c.spanSentencesSetting = map[bool]string{true: llama.SentencesWhole, false: llama.SentencesTokens}[c.spanSentences]
	}
	if c.nPredict < 0 {
		c.nPredict = 0 // the library's "until end of generation or a full context"
	}
	// Unset pruning settings stay zero, so learned predictors keep their
	// trained layers and ratios, and the non-pruning modes see none.
	c.keepRatioGiven = fs.Changed("keep-ratio")
	c.pruningGiven = c.keepRatioGiven || fs.Changed("prune-layers") || fs.Changed("predictors") ||
		fs.Changed("schedule") || fs.Changed("span") || fs.Changed("span-trail") || fs.Changed("span-trail-sentence") || fs.Changed("span-echo") || fs.Changed("span-echo-hops") ||
		fs.Changed("span-echo-first") || fs.Changed("span-sentences")
	return nil
}

func run(args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(c.model); err != nil && c.model == cache.DefaultModel() {
		return fmt.Errorf("default model not found at %s: run `make deps` first, or pass -m MODEL.gguf", c.model)
	}
	if c.model, err = fetch.ResolveModel(c.model, stderr); err != nil {
		return err
	}
	l, err := load(c, stderr)
	if err != nil {
		return err
	}
	defer l.Free()

	stream := func(piece string) bool {
		if !c.json {
			fmt.Fprint(stdout, piece)
		}
		return true
	}
	gen := []llama.PredictOption{llama.SetTokens(c.nPredict), llama.SetThreads(c.threads), llama.SetTemperature(c.temp),
		llama.SetTopK(c.topK), llama.SetTopP(c.topP), llama.SetSeed(c.seed), llama.SetTokenCallback(stream)}
	if c.chat {
		return chat(c, l, gen, stdout, stderr)
	}
	prompt, err := chatPrompt(c, l)
	if err != nil {
		return err
	}
	res, err := l.Generate(prompt, gen...)
	if err != nil {
		return err
	}
	if c.doc != "" {
		fmt.Fprintln(stderr, prefillLine(res))
	}
	if err := explain(c, res.SDTP, stderr); err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintln(stdout)
		return nil
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(newReport(res))
}

// newReport is --json's object for one generation.
func newReport(res llama.Result) report {
	r := report{
		PromptTokens:    res.PromptTokens,
		GeneratedTokens: res.GeneratedTokens,
		PrefillMS:       float64(res.Prefill.Microseconds()) / 1000,
		DecodeMS:        float64(res.Decode.Microseconds()) / 1000,
		Text:            res.Text,
		Mode:            llama.ModeLlamaCpp,
		ReusedTokens:    res.ReusedTokens,
	}
	if st := res.SDTP; st != nil {
		r.Mode, r.KeptPerStage, r.KeptPerLayer, r.FLOPRatio, r.KVBytes = st.Mode, st.KeptPerStage, st.KeptPerLayer, st.FLOPRatio, st.KVBytes
		r.KVPolicy, r.KVLimit, r.KVPeakBytes, r.Scorer = st.KVPolicy, st.KVLimit, st.KVPeakBytes, st.Scorer
		r.KeptTokens = st.KeptPerStage[len(st.KeptPerStage)-1]
	}
	return r
}

// load loads the model in c.mode. When the architecture cannot be pruned,
// the default mode falls back to llama.cpp's own prefill with a notice; a
// pruning mode asked for with --mode, pruning settings, or a --kv-policy,
// is an error (which names the mode that works).
func load(c config, stderr io.Writer) (*llama.LLama, error) {
	opts := []llama.ModelOption{llama.SetContext(c.ctxSize)}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(100, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("loading model"), progressbar.OptionClearOnFinish())
		opts = append(opts, llama.SetLoadProgress(func(p float32) bool {
			_ = bar.Set(int(p * 100))
			return true
		}))
		defer bar.Finish()
	}
	sdtpOpts := llama.SDTPOptions{Mode: c.mode, Schedule: c.schedule, Layers: c.pruneLayers, Predictors: c.predictors, ONNXProvider: c.provider,
		KVPolicy: c.kvPolicy, SpanKernel: c.span, SpanTrail: c.spanTrail, SpanTrailEnd: c.spanTrailEnd, SpanEcho: c.spanEcho, SpanEchoHops: c.spanEchoHops,
		SpanEchoRank: c.spanEchoRank, SpanSentences: c.spanSentencesSetting}
	if c.keepRatioGiven {
		sdtpOpts.KeepRatio = c.keepRatio
	}
	if c.kvPolicy != sdtp.KVNone {
		sdtpOpts.KVBudget = c.kvBudget
	}
	l, err := llama.New(c.model, append(opts, llama.WithSDTP(sdtpOpts))...)
	if !errors.Is(err, llama.ErrUnsupportedArch) || c.modeGiven || c.pruningGiven || c.kvPolicy != sdtp.KVNone {
		return l, err
	}
	fmt.Fprintf(stderr, "sdtp-run: %v\nsdtp-run: running with --mode llamacpp (no pruning)\n", err)
	sdtpOpts.Mode = llama.ModeLlamaCpp
	return llama.New(c.model, append(opts, llama.WithSDTP(sdtpOpts))...)
}

// chatPrompt is the prompt text: as given, or with --chat-template (or
// --doc) the model's chat template applied to [--system] and the prompt
// (with --doc: the document and the question) as one user message,
// ending with the opening of the assistant's turn.
func chatPrompt(c config, l *llama.LLama) (string, error) {
	if !c.chatTemplate {
		return c.prompt, nil
	}
	user, option := c.prompt, "--chat-template"
	if c.doc != "" {
		var err error
		if user, err = docMessage(c); err != nil {
			return "", err
		}
		option = "--doc"
	}
	p, err := l.ApplyChatTemplate(append(opening(c), llama.ChatMessage{Role: "user", Content: user}), true)
	if err != nil {
		return "", templateErr(c, option, err)
	}
	return p, nil
}

// explain renders --explain and --explain-html.
func explain(c config, st *llama.SDTPStats, stderr io.Writer) error {
	if !c.explain && c.explainHTML == "" {
		return nil
	}
	if st == nil {
		return errors.New("--explain needs a staged mode (dense or a pruning mode) on a staged architecture")
	}
	if c.explain {
		explainANSI(stderr, st)
	}
	if c.explainHTML == "" {
		return nil
	}
	f, err := os.Create(c.explainHTML)
	if err != nil {
		return err
	}
	if err := explainHTML(f, st); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
