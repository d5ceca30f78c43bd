package predictors

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
)

// Scorer names, as llama.SDTPStats.Scorer and sdtp-bench's "scorer"
// report them; the training-free scorers keep their registry names
// ("attention", "random").
const (
	ScorerONNX      = "onnx"       // ONNX Runtime predictors (predictors.json + .onnx files)
	ScorerGGUFHeads = "gguf-heads" // predictor heads inside the model's GGUF, run in-graph
)

// Source is where mode sdtp's learned predictors for a model come from.
type Source struct {
	Kind  string      // ScorerONNX, ScorerGGUFHeads, or "" for none
	Dir   string      // the ONNX set's directory (Kind ScorerONNX)
	Heads *gguf.Heads // the heads in the GGUF (Kind ScorerGGUFHeads)
	// From says where they were found, for messages: "--predictors",
	// "the model's GGUF", "beside the model", or "shipped set NAME".
	From string
}

// Locate finds learned predictors for the model in the order the library,
// sdtp-run and sdtp-bench all use: the directory the user named (dir),
// heads inside the model's GGUF, a MODEL.predictors/ directory beside the
// model file, and the shipped set trained for the model (For). No source
// is Source{} and a nil error; the caller then prunes with the attention
// scorer and says so. Identity checks happen when the set is loaded
// (onnx.LoadFor), except for shipped sets, which For only picks when they
// match.
func Locate(dir string, m Model) (Source, error) {
	if dir != "" {
		return Source{Kind: ScorerONNX, Dir: dir, From: "--predictors"}, nil
	}
	heads, err := gguf.Read(m.Path)
	if err != nil {
		return Source{}, err
	}
	if heads != nil {
		return Source{Kind: ScorerGGUFHeads, Heads: heads, From: "the model's GGUF"}, nil
	}
	beside := strings.TrimSuffix(m.Path, filepath.Ext(m.Path)) + ".predictors"
	if _, err := os.Stat(filepath.Join(beside, onnx.ManifestName)); err == nil {
		return Source{Kind: ScorerONNX, Dir: beside, From: "beside the model"}, nil
	}
	shipped, name, err := For(m)
	if err != nil || shipped == "" {
		return Source{}, err
	}
	return Source{Kind: ScorerONNX, Dir: shipped, From: "shipped set " + name}, nil
}
