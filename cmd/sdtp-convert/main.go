// Command sdtp-convert moves SDTP predictors between their two forms:
// a directory of ONNX files with predictors.json, and heads stored inside
// the model's GGUF (scored in-graph).
//
//	sdtp-convert embed   --model in.gguf --predictors DIR --out out.gguf
//	sdtp-convert extract --model in.gguf --out DIR
//	sdtp-convert info    --model in.gguf
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	flag "github.com/spf13/pflag"

	ggufio "github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
)

const usage = `usage:
  sdtp-convert embed   --model IN.gguf --predictors DIR --out OUT.gguf
  sdtp-convert extract --model IN.gguf --out DIR
  sdtp-convert info    --model IN.gguf`

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
	out := fs.String("out", "", "output GGUF (embed) or directory (extract)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("--model is required\n" + usage)
	}
	switch args[0] {
	case "embed":
		if *preds == "" || *out == "" {
			return errors.New("embed needs --predictors and --out")
		}
		return embed(*model, *preds, *out)
	case "extract":
		if *out == "" {
			return errors.New("extract needs --out")
		}
		return extract(*model, *out)
	case "info":
		return info(*model, stdout)
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
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
	set, err := onnx.LoadFor(dir, model, arch, nLayer, nEmbd)
	if err != nil {
		return err
	}
	m := set.Manifest
	set.Close()
	hash, err := predictor.EmbeddingHash(model)
	if err != nil {
		return err
	}
	training, err := json.Marshal(m.Training)
	if err != nil {
		return err
	}
	h := &gguf.Heads{Layers: m.Layers, KeepRatios: m.KeepRatios, HeadKeep: m.HeadKeep, TailKeepFrac: m.TailKeepFrac,
		ModelHash: hash, Training: string(training)}
	for _, f := range m.Files {
		mlp, err := onnx.ReadMLP(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		h.MLPs = append(h.MLPs, mlp)
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
	if h.Training != "" && h.Training != "null" {
		if err := json.Unmarshal([]byte(h.Training), &m.Training); err != nil {
			return fmt.Errorf("sdtp.training is not JSON: %w", err)
		}
	}
	return onnx.WriteSet(dir, m, h.MLPs)
}

func info(model string, w io.Writer) error {
	h, err := gguf.Read(model)
	if err != nil {
		return err
	}
	if h == nil {
		fmt.Fprintf(w, "%s: no predictor heads\n", model)
		return nil
	}
	fmt.Fprintf(w, "%s: %d predictor heads\n  layers      %v\n  keep ratios %v\n  protected   first %d, last %.0f%%\n  model hash  %s\n",
		model, len(h.Layers), h.Layers, h.KeepRatios, h.HeadKeep, 100*h.TailKeepFrac, h.ModelHash)
	for i, m := range h.MLPs {
		fmt.Fprintf(w, "  stage %d: Linear(%d, %d) → GELU → Linear(%d, 2)\n", i, m.D, m.H, m.H)
	}
	return nil
}
