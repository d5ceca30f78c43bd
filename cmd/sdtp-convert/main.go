// Command sdtp-convert moves SDTP predictors between their two forms — a
// directory of ONNX files with predictors.json, and heads stored inside the
// model's GGUF (scored in-graph) — and checks that both agree.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	flag "github.com/spf13/pflag"

	ggufio "github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/internal/cliflag"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

const usage = `usage:
  sdtp-convert embed   --model IN.gguf --predictors DIR -o OUT.gguf   ONNX predictors -> heads inside the GGUF
  sdtp-convert extract --model IN.gguf -o DIR                         heads -> ONNX + predictors.json
  sdtp-convert inspect FILE|DIR                                        schedule, dims, provenance
  sdtp-convert check   --model M --predictors DIR [--text FILE]       ONNX vs in-graph scores on one prompt
  sdtp-convert init    --model M -o DIR [--seed N] [--fusion rank|zscore]
                                                                       random-init predictors (until trained ones exist),
                                                                       with a default fusion block for mode hybrid`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-convert:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("sdtp-convert "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model GGUF")
	preds := fs.String("predictors", "", "directory with predictors.json and ONNX files")
	out := fs.StringP("out", "o", "", "output GGUF (embed) or directory (extract, init)")
	text := fs.String("text", "", "prompt text file for check (default: a built-in text)")
	seed := fs.Uint64("seed", 1, "seed for init")
	fusion := fs.String("fusion", "", "init: add a fusion block (predictor.DefaultFusion) with this method, rank or zscore")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := refuseUnused(fs, args[0]); err != nil {
		return err
	}
	if err := cliflag.RefuseEmpty(fs, "model", "predictors", "out", "text"); err != nil {
		return err
	}
	need := func(flags ...string) error {
		for i := 0; i < len(flags); i += 2 {
			if flags[i+1] == "" {
				return fmt.Errorf("%s needs --%s\n%s", args[0], flags[i], usage)
			}
		}
		return nil
	}
	switch args[0] {
	case "embed":
		if err := need("model", *model, "predictors", *preds, "out", *out); err != nil {
			return err
		}
		return embed(*model, *preds, *out)
	case "extract":
		if err := need("model", *model, "out", *out); err != nil {
			return err
		}
		return extract(*model, *out)
	case "inspect":
		if fs.NArg() != 1 {
			return errors.New("inspect needs one FILE (GGUF) or DIR (ONNX predictors)")
		}
		return inspect(fs.Arg(0), stdout)
	case "check":
		if err := need("model", *model, "predictors", *preds); err != nil {
			return err
		}
		return check(*model, *preds, *text, stdout)
	case "init":
		if err := need("model", *model, "out", *out); err != nil {
			return err
		}
		return initRandom(*model, *out, *seed, *fusion)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// usedFlags are the flags each command reads.
var usedFlags = map[string][]string{
	"embed":   {"model", "predictors", "out"},
	"extract": {"model", "out"},
	"inspect": {},
	"check":   {"model", "predictors", "text"},
	"init":    {"model", "out", "seed", "fusion"},
}

// refuseUnused refuses a flag the command would ignore.
func refuseUnused(fs *flag.FlagSet, cmd string) error {
	used, ok := usedFlags[cmd]
	if !ok {
		return nil // an unknown command is reported by run
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && !slices.Contains(used, f.Name) {
			err = fmt.Errorf("%s does not use --%s\n%s", cmd, f.Name, usage)
		}
	})
	return err
}

// modelShape reads what predictors are checked against.
func modelShape(path string) (arch string, nLayer, nEmbd int, err error) {
	f, err := ggufio.Open(path)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	if arch, err = f.Architecture(); err != nil {
		return "", 0, 0, err
	}
	l, err1 := f.GetInt(arch + ".block_count")
	d, err2 := f.GetInt(arch + ".embedding_length")
	return arch, int(l), int(d), errors.Join(err1, err2)
}

func embed(model, dir, out string) error {
	arch, nLayer, nEmbd, err := modelShape(model)
	if err != nil {
		return err
	}
	set, err := onnx.LoadFor(dir, model, arch, nLayer, nEmbd, onnx.Options{})
	if err != nil {
		return err
	}
	defer set.Close()
	h, err := gguf.FromONNX(set)
	if err != nil {
		return err
	}
	if h.ModelHash, err = predictor.EmbeddingHash(model); err != nil {
		return err
	}
	return gguf.Embed(model, out, h)
}

func extract(model, dir string) error {
	h, err := gguf.Read(model)
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%s has no predictor heads", model)
	}
	var m onnx.Manifest
	m.Version = 1
	if m.Model.Arch, m.Model.NLayer, m.Model.NEmbd, err = modelShape(model); err != nil {
		return err
	}
	m.Model.EmbdHash = h.ModelHash
	m.Layers, m.KeepRatios, m.HeadKeep, m.TailKeepFrac = h.Layers, h.KeepRatios, h.HeadKeep, h.TailKeepFrac
	m.Fusion = h.Fusion
	if h.Training != "" && h.Training != "null" {
		if err := json.Unmarshal([]byte(h.Training), &m.Training); err != nil {
			return fmt.Errorf("sdtp.training is not JSON: %w", err)
		}
	}
	return onnx.WriteSet(dir, m, h.MLPs)
}

// inspect describes heads inside a GGUF or an ONNX predictor directory.
func inspect(path string, w io.Writer) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		set, err := onnx.Load(path)
		if err != nil {
			return err
		}
		defer set.Close()
		m := set.Manifest
		fmt.Fprintf(w, "%s: %d ONNX predictors for %s (%d layers, width %d)\n", path, len(m.Files), m.Model.Arch, m.Model.NLayer, m.Model.NEmbd)
		fmt.Fprintf(w, "  layers      %v\n  keep ratios %v\n  protected   first %d, last %.0f%%\n  model hash  %s\n  training    %v\n",
			m.Layers, m.KeepRatios, m.HeadKeep, 100*m.TailKeepFrac, m.Model.EmbdHash, m.Training)
		printFusion(w, m.Fusion)
		return nil
	}
	h, err := gguf.Read(path)
	if err != nil {
		return err
	}
	if h == nil {
		fmt.Fprintf(w, "%s: no predictor heads\n", path)
		return nil
	}
	fmt.Fprintf(w, "%s: %d predictor heads\n  layers      %v\n  keep ratios %v\n  protected   first %d, last %.0f%%\n  model hash  %s\n  training    %s\n",
		path, len(h.Layers), h.Layers, h.KeepRatios, h.HeadKeep, 100*h.TailKeepFrac, h.ModelHash, h.Training)
	if h.MLPs[0].Context > 0 {
		fmt.Fprintf(w, "  context     %v\n", sdtp.ContextFeatures)
	}
	printFusion(w, h.Fusion)
	for i, m := range h.MLPs {
		fmt.Fprintf(w, "  stage %d: Linear(%d, %d) → GELU → Linear(%d, 2)\n", i, m.In(), m.H, m.H)
	}
	return nil
}

// printFusion describes a fusion block (mode hybrid).
func printFusion(w io.Writer, f *predictor.Fusion) {
	if f == nil {
		fmt.Fprintf(w, "  fusion      none (mode hybrid fuses by default: rank, %g)\n", predictor.DefaultAttentionWeight)
		return
	}
	pool := f.HeadPool
	if pool == predictor.PoolTopK {
		pool = fmt.Sprintf("top-%d", f.TopK)
	}
	layers := "every layer"
	if f.AttentionLayers != nil {
		layers = fmt.Sprintf("layers %v", f.AttentionLayers)
	}
	if f.AttentionWindow > 0 {
		layers += fmt.Sprintf(", queries: the last %d tokens", f.AttentionWindow)
	} else {
		layers += ", queries: the protected tail"
	}
	if f.AttentionSampled > 0 {
		layers += fmt.Sprintf(" and at most %d more spread over the rest of it", f.AttentionSampled)
	}
	fmt.Fprintf(w, "  fusion      v%d %s, attention weights %v; heads pooled by %s, layers by %s, sliding-window layers %s; attention of %s\n",
		f.Version, f.Method, f.AttentionWeights, pool, f.LayerNorm, f.SlidingWindow, layers)
}
