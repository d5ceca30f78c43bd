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
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-bench:", err)
		os.Exit(1)
	}
}

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
