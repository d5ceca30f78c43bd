package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

// defaultChatQuestions is the scripted conversation about the shipped
// example document (docs/examples/frank-headlam.txt): the document goes
// with the first question, the others follow one per turn.
var defaultChatQuestions = []string{
	"Where was Frank Headlam born?",
	"Which squadron did he command in 1941, and what aircraft did it fly?",
	"What was his rank when he retired?",
	"Where did he die?",
}

// chatCtx is the context of --chat: room for the document and four turns.
const chatCtx = 8192

// kindChat is the kind of a --chat run (its own report, not a report.Run).
const kindChat = "chat"

// chatTurn is one turn of the scripted conversation in one mode: medians
// over --repeat conversations.
type chatTurn struct {
	Turn            int     `json:"turn"` // 1-based; turn 1 carries the document
	Mode            string  `json:"mode"`
	Scorer          string  `json:"scorer,omitempty"` // what pruned (llama.SDTPStats.Scorer)
	PromptTokens    int     `json:"prompt_tokens"`    // the whole conversation so far, templated
	ReusedTokens    int     `json:"reused_tokens"`    // served from the cache of the previous turn
	PrefilledTokens int     `json:"prefilled_tokens"` // prompt_tokens − reused_tokens
	KeptTokens      int     `json:"kept_tokens"`      // of those, the ones reaching the last layer
	FLOPRatio       float64 `json:"flop_ratio,omitempty"`
	PrefillMS       float64 `json:"prefill_ms"`
	GeneratedTokens int     `json:"generated_tokens"` // of the first conversation's answer
	DecodeTokS      float64 `json:"decode_tok_s"`     // median decode speed of the answer
	TurnMS          float64 `json:"turn_ms"`          // prefill + decode of the answer
	// PrefillVsLlamaCpp and TurnVsLlamaCpp are this mode's prefill and
	// whole-turn times over mode llamacpp's on the same turn (when
	// llamacpp ran): below 1 is faster. With different answer lengths the
	// turn ratio also compares different work (see --ignore-eos).
	PrefillVsLlamaCpp float64 `json:"prefill_vs_llamacpp,omitempty"`
	TurnVsLlamaCpp    float64 `json:"turn_vs_llamacpp,omitempty"`
	Answer            string  `json:"answer"` // of the first conversation
}

// chatReport is what --chat --json prints.
type chatReport struct {
	Kind       string     `json:"kind"` // "chat"
	Command    string     `json:"command"`
	Date       string     `json:"date"`
	ModelFile  string     `json:"model_file"`
	Threads    int        `json:"threads"`
	BuildFlags string     `json:"build_flags"`
	Doc        string     `json:"doc"`
	Questions  []string   `json:"questions"`
	Repeat     int        `json:"repeat"`
	IgnoreEOS  bool       `json:"ignore_eos"`
	Turns      []chatTurn `json:"turns"`
	WallS      float64    `json:"wall_s"`
}

// runChat is --chat: the scripted conversation in every mode, one
// *llama.LLama per mode (the library path users run), modes interleaved
// turn by turn, each conversation starting from empty caches after a
// one-token warm-up of its model.
func runChat(c config, args []string, stdout, stderr io.Writer) error {
	started := time.Now()
	if len(c.keepRatios) > 1 || len(c.pruneLayers) > 1 || len(c.kvPolicies) > 1 {
		return errors.New("--chat runs one schedule: give at most one --keep-ratios, --prune-layers and --kv-policy")
	}
	for _, m := range c.modes {
		if m == "sdtp-onnx" || m == "sdtp-gguf" {
			return fmt.Errorf("--chat runs the library's modes; %s is a bench-only mode", m)
		}
	}
	doc, err := os.ReadFile(c.doc)
	if err != nil {
		return fmt.Errorf("--doc: %w", err)
	}
	opts := llama.SDTPOptions{Predictors: c.predictors, ONNXProvider: c.onnxProvider, Layers: c.pruneLayers[0],
		KVPolicy: c.kvPolicies[0]}
	if opts.KVPolicy != sdtp.KVNone {
		opts.KVBudget = c.kvBudget
	}
	if c.keepRatiosSet {
		opts.KeepRatio = c.keepRatios[0]
	}
	gen := []llama.PredictOption{llama.SetTemperature(0), llama.SetTokens(c.decodeTokens), llama.SetThreads(c.threads)}
	if c.ignoreEOS {
		gen = append(gen, llama.IgnoreEOS)
	}

	samples := map[[2]int][]llama.Result{} // (turn, mode index) -> one per conversation
	answers := map[[2]int]string{}
	for r := range c.repeat {
		if err := converse(c, opts, gen, string(doc), r, samples, answers, stderr); err != nil {
			return err
		}
	}

	rep := chatReport{Kind: "chat", Command: command(args), Date: started.UTC().Format(time.RFC3339), ModelFile: c.model,
		Threads: c.threads, BuildFlags: buildFlags(), Doc: c.doc, Questions: c.questions, Repeat: c.repeat, IgnoreEOS: c.ignoreEOS}
	ref := slices.Index(c.modes, llama.ModeLlamaCpp)
	for t := range c.questions {
		for i, mode := range c.modes {
			ss := samples[[2]int{t, i}]
			first := ss[0]
			row := chatTurn{Turn: t + 1, Mode: mode, PromptTokens: first.PromptTokens, ReusedTokens: first.ReusedTokens,
				PrefilledTokens: first.PromptTokens - first.ReusedTokens, KeptTokens: first.PromptTokens - first.ReusedTokens,
				PrefillMS:       medianMS(ss, prefillTime),
				GeneratedTokens: first.GeneratedTokens,
				DecodeTokS:      medianDecodeTokS(ss),
				TurnMS:          medianMS(ss, turnTime),
				Answer:          answers[[2]int{t, i}]}
			if st := first.SDTP; st != nil {
				row.Scorer, row.FLOPRatio, row.KeptTokens = st.Scorer, st.FLOPRatio, st.KeptPerStage[len(st.KeptPerStage)-1]
			}
			if ref >= 0 {
				refs := samples[[2]int{t, ref}]
				row.PrefillVsLlamaCpp = row.PrefillMS / medianMS(refs, prefillTime)
				row.TurnVsLlamaCpp = row.TurnMS / medianMS(refs, turnTime)
			}
			rep.Turns = append(rep.Turns, row)
		}
	}
	rep.WallS = time.Since(started).Seconds()
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "turn\tmode\tprompt\treused\tprefilled\tkept\tprefill ms\tvs llamacpp\tFLOP ratio\tanswer tokens\tdecode tok/s\tturn ms\tvs llamacpp\t")
	for _, r := range rep.Turns {
		mode := report.Row{Mode: r.Mode, Scorer: r.Scorer}.Label()
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%.1f\t%.2fx\t%.2fx\t%d\t%.1f\t%.1f\t%.2fx\t\n", r.Turn, mode, r.PromptTokens,
			r.ReusedTokens, r.PrefilledTokens, r.KeptTokens, r.PrefillMS, r.PrefillVsLlamaCpp, max(r.FLOPRatio, 1),
			r.GeneratedTokens, r.DecodeTokS, r.TurnMS, r.TurnVsLlamaCpp)
	}
	return tw.Flush()
}

// converse runs conversation r in every mode, interleaved turn by turn,
// adding each turn's result to samples (and, for r = 0, its answer).
func converse(c config, opts llama.SDTPOptions, gen []llama.PredictOption, doc string, r int,
	samples map[[2]int][]llama.Result, answers map[[2]int]string, stderr io.Writer) error {
	convs := make([]*llama.Conversation, len(c.modes))
	for i, mode := range c.modes {
		l, err := llama.New(c.model, llama.SetContext(chatCtx), llama.WithSDTP(opts.For(mode)))
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		defer l.Free()
		if _, err := l.Generate("Hello", append(gen, llama.SetTokens(1))...); err != nil { // warm-up
			return err
		}
		convs[i] = l.NewConversation()
	}
	for t, q := range c.questions {
		msg := q
		if t == 0 {
			msg = llama.DocumentQuestion(doc, q)
		}
		for i, mode := range c.modes {
			res, err := convs[i].Say(context.Background(), msg, gen...)
			if err != nil {
				return fmt.Errorf("mode %s, turn %d: %w", mode, t+1, err)
			}
			k := [2]int{t, i}
			samples[k] = append(samples[k], res)
			if r == 0 {
				answers[k] = res.Text
			}
			fmt.Fprintf(stderr, "conversation %d, turn %d, %s: prefill %d tokens (%d reused) in %v\n",
				r+1, t+1, mode, res.PromptTokens-res.ReusedTokens, res.ReusedTokens, res.Prefill.Round(time.Millisecond))
		}
	}
	return nil
}

func prefillTime(r llama.Result) time.Duration { return r.Prefill }
func turnTime(r llama.Result) time.Duration    { return r.Prefill + r.Decode }

// medianDecodeTokS is the median decode speed over the results, in tokens
// per second (0 when nothing was decoded).
func medianDecodeTokS(rs []llama.Result) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		if r.GeneratedTokens > 0 && r.Decode > 0 {
			v = append(v, float64(r.GeneratedTokens)/r.Decode.Seconds())
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// medianMS is the median of f over the results, in milliseconds.
func medianMS(rs []llama.Result, f func(llama.Result) time.Duration) float64 {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = f(r)
	}
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}
