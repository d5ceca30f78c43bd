package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/sdtp"
)

// ManifestName is the file beside the ONNX files that describes them.
const ManifestName = "predictors.json"

// Manifest is predictors.json: which model the predictors were trained
// for, where they prune, and one ONNX file per stage. docs/PREDICTORS.md
// documents every field.
type Manifest struct {
	Version int `json:"version"`
	Model   struct {
		Arch     string `json:"arch"`
		NLayer   int    `json:"n_layer"`
		NEmbd    int    `json:"n_embd"`
		EmbdHash string `json:"embd_hash"` // sha256 of token_embd.weight's bytes
	} `json:"model"`
	Layers       []int     `json:"layers"`
	KeepRatios   []float64 `json:"keep_ratios"`
	HeadKeep     int       `json:"head_keep"`
	TailKeepFrac float64   `json:"tail_keep_frac"`
	// ContextFeatures are the sdtp.ContextFeatures every predictor reads
	// beside the hidden state (input "context"); empty: none.
	ContextFeatures []string       `json:"context_features,omitempty"`
	Files           []string       `json:"files"`
	Training        map[string]any `json:"training,omitempty"`
	// Fusion, when present, is how mode hybrid fuses these predictors
	// with the question attention (predictor.Fusion); without it the set
	// prunes with its learned scores alone, and hybrid uses
	// predictor.DefaultFusion.
	Fusion *predictor.Fusion `json:"fusion,omitempty"`
}

// Set is one ONNX session per stage; it scores tokens from the hidden
// states entering each pruning layer. Sessions are created once and are
// safe for concurrent requests.
type Set struct {
	Manifest Manifest
	Dir      string // where predictors.json is
	Provider string // execution provider in use: cpu, cuda or coreml
	sessions []*ort.DynamicAdvancedSession
	outputs  []string // "scores" or "logits" per stage
}

// Execution providers for Options.Provider.
const (
	ProviderCPU    = "cpu"
	ProviderCUDA   = "cuda"
	ProviderCoreML = "coreml"
	ProviderAuto   = "auto" // CUDA, else CoreML, else CPU
)

// Options choose how the predictor sessions run.
type Options struct {
	Provider string // "" = ProviderCPU
}

// Load reads dir/predictors.json and opens its ONNX files on the CPU.
func Load(dir string) (*Set, error) { return LoadWith(dir, Options{}) }

// LoadWith is Load with a choice of execution provider.
func LoadWith(dir string, o Options) (*Set, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := Init(""); err != nil {
		return nil, err
	}
	so, provider, err := sessionOptions(o.Provider)
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	s := &Set{Manifest: m, Dir: dir, Provider: provider}
	for i, f := range m.Files {
		sess, out, err := open(filepath.Join(dir, f), m.Model.NEmbd, len(m.ContextFeatures), so)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("onnx predictors: stage %d: %w", i, err)
		}
		s.sessions = append(s.sessions, sess)
		s.outputs = append(s.outputs, out)
	}
	return s, nil
}

// ReadManifest reads and checks dir/predictors.json without opening its
// ONNX files. Errors: the file is missing or malformed, or describes
// predictors this build cannot run (predictor.ErrMismatch).
func ReadManifest(dir string) (Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return Manifest{}, fmt.Errorf("onnx predictors: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, fmt.Errorf("onnx predictors: %s: %w", ManifestName, err)
	}
	return m, m.validate()
}

// LoadFor is Load plus a check that the predictors were trained for the
// model at modelPath: same architecture, depth, width and (when the
// manifest has one) embedding hash.
func LoadFor(dir, modelPath, arch string, nLayer, nEmbd int, o Options) (*Set, error) {
	set, err := LoadWith(dir, o)
	if err != nil {
		return nil, err
	}
	if err := set.Manifest.CheckModel(dir, arch, nLayer, nEmbd, func() (string, error) { return predictor.EmbeddingHash(modelPath) }); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

// CheckModel says whether the predictors in dir, which m describes, were
// trained for a model of architecture arch, nLayer layers and width nEmbd
// whose embedding hash (predictor.EmbeddingHash) hash returns; the hash is
// asked for only when m has one. Errors wrap predictor.ErrMismatch.
func (m Manifest) CheckModel(dir, arch string, nLayer, nEmbd int, hash func() (string, error)) error {
	want := m.Model
	if want.Arch != arch || want.NLayer != nLayer || want.NEmbd != nEmbd {
		return fmt.Errorf("%w: onnx predictors in %s are for %s (%d layers, width %d), the model is %s (%d, %d)",
			predictor.ErrMismatch, dir, want.Arch, want.NLayer, want.NEmbd, arch, nLayer, nEmbd)
	}
	if want.EmbdHash != "" {
		if h, err := hash(); err != nil || h != want.EmbdHash {
			return fmt.Errorf("%w: onnx predictors in %s were trained for another model (embedding hash mismatch)", predictor.ErrMismatch, dir)
		}
	}
	return nil
}

func (m Manifest) validate() error {
	if m.Model.NEmbd <= 0 || m.Model.NLayer <= 0 {
		return errors.New("onnx predictors: manifest lacks model.n_embd / model.n_layer")
	}
	if len(m.Files) != len(m.Layers) {
		return fmt.Errorf("onnx predictors: %d files for %d stages", len(m.Files), len(m.Layers))
	}
	if m.HeadKeep != sdtp.HeadKeep || m.TailKeepFrac != sdtp.TailKeepFrac {
		return fmt.Errorf("%w: onnx predictors trained with head %d / tail %.2f, this build protects %d / %.2f",
			predictor.ErrMismatch, m.HeadKeep, m.TailKeepFrac, sdtp.HeadKeep, sdtp.TailKeepFrac)
	}
	if len(m.ContextFeatures) > 0 && !slices.Equal(m.ContextFeatures, sdtp.ContextFeatures) {
		return fmt.Errorf("%w: onnx predictors read context features %v, this build computes %v",
			predictor.ErrMismatch, m.ContextFeatures, sdtp.ContextFeatures)
	}
	if m.Fusion != nil {
		if err := m.Fusion.Validate(len(m.Layers)); err != nil {
			return fmt.Errorf("onnx predictors: fusion: %w", err)
		}
	}
	return m.Schedule().Validate(m.Model.NLayer)
}

// Schedule is where the predictors prune.
func (m Manifest) Schedule() sdtp.Schedule {
	return sdtp.Schedule{Layers: m.Layers, KeepRatios: m.KeepRatios}
}

// open checks the I/O contract of one predictor and opens a session.
func open(path string, nEmbd, nContext int, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, string, error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, "", err
	}
	if err := checkWeights(path); err != nil {
		return nil, "", err
	}
	names, widths := []string{"hidden_states"}, []int64{int64(nEmbd)}
	if nContext > 0 {
		names, widths = append(names, "context"), append(widths, int64(nContext))
	}
	ok := len(ins) == len(names)
	for i := 0; ok && i < len(ins); i++ {
		ok = ins[i].Name == names[i] && ins[i].DataType == ort.TensorElementDataTypeFloat &&
			len(ins[i].Dimensions) == 2 && ins[i].Dimensions[1] == widths[i]
	}
	if !ok {
		var want []string
		for i, name := range names {
			want = append(want, fmt.Sprintf("%s [N, %d]", name, widths[i]))
		}
		return nil, "", fmt.Errorf("%s: want float inputs %s, have %v", path, strings.Join(want, " and "), ins)
	}
	if len(outs) != 1 || outs[0].DataType != ort.TensorElementDataTypeFloat {
		return nil, "", fmt.Errorf("%s: want one float output, scores [N] or logits [N, 2], have %v", path, outs)
	}
	out := outs[0]
	switch {
	case out.Name == "scores" && len(out.Dimensions) == 1:
	case out.Name == "logits" && len(out.Dimensions) == 2 && out.Dimensions[1] == 2:
	default:
		return nil, "", fmt.Errorf("%s: output %s %v is neither scores [N] nor logits [N, 2]", path, out.Name, out.Dimensions)
	}
	sess, err := ort.NewDynamicAdvancedSession(path, names, []string{out.Name}, so)
	return sess, out.Name, err
}

// sessionOptions prepares the sessions' options and execution provider.
// ONNX Runtime's worker threads spin after each run by default; they would
// then compete with ggml's own threads for the cores during the next
// layers, so spinning is turned off.
func sessionOptions(provider string) (*ort.SessionOptions, string, error) {
	if provider == ProviderAuto {
		for _, p := range []string{ProviderCUDA, ProviderCoreML} {
			if so, name, err := sessionOptions(p); err == nil {
				return so, name, nil
			}
		}
		provider = ProviderCPU
	}
	if provider == "" {
		provider = ProviderCPU
	}
	if provider != ProviderCPU && provider != ProviderCUDA && provider != ProviderCoreML {
		return nil, "", fmt.Errorf("onnx: unknown execution provider %q (cpu, cuda, coreml, auto)", provider)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, "", err
	}
	err = errors.Join(so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"),
		so.AddSessionConfigEntry("session.inter_op.allow_spinning", "0"))
	if err == nil && provider != ProviderCPU {
		err = appendProvider(so, provider)
	}
	if err != nil {
		so.Destroy()
		return nil, "", err
	}
	return so, provider, nil
}

func appendProvider(so *ort.SessionOptions, provider string) error {
	if provider == ProviderCoreML {
		if err := so.AppendExecutionProviderCoreMLV2(map[string]string{}); err != nil {
			return fmt.Errorf("onnx: CoreML execution provider unavailable (it needs macOS and the darwin ONNX Runtime library): %w", err)
		}
		return nil
	}
	cuda, err := ort.NewCUDAProviderOptions()
	if err == nil {
		defer cuda.Destroy()
		err = so.AppendExecutionProviderCUDA(cuda)
	}
	if err != nil {
		return fmt.Errorf("onnx: CUDA execution provider unavailable (it needs an ONNX Runtime build with CUDA, libonnxruntime_providers_cuda.so, CUDA 12 and cuDNN 9 on the library path; use provider cpu): %w", err)
	}
	return nil
}

// Close releases the sessions.
func (s *Set) Close() {
	for _, sess := range s.sessions {
		sess.Destroy()
	}
	s.sessions = nil
}

func (s *Set) Needs() sdtp.Needs {
	return sdtp.Needs{Hidden: true, Context: len(s.Manifest.ContextFeatures) > 0}
}

// Score runs the stage's predictor on the live tokens' hidden states.
func (s *Set) Score(in sdtp.ScoreInput) ([]float32, error) {
	i := slices.Index(s.Manifest.Layers, in.Layer)
	if i < 0 {
		return nil, fmt.Errorf("onnx predictors: no predictor for layer %d (have %v)", in.Layer, s.Manifest.Layers)
	}
	n := len(in.Positions)
	if len(in.Hidden) != n*s.Manifest.Model.NEmbd {
		return nil, fmt.Errorf("onnx predictors: %d hidden values for %d tokens of width %d", len(in.Hidden), n, s.Manifest.Model.NEmbd)
	}
	x, err := ort.NewTensor(ort.NewShape(int64(n), int64(s.Manifest.Model.NEmbd)), in.Hidden)
	if err != nil {
		return nil, err
	}
	defer x.Destroy()
	ins := []ort.Value{x}
	if k := len(s.Manifest.ContextFeatures); k > 0 {
		if len(in.Context) != n*k {
			return nil, fmt.Errorf("onnx predictors: %d context values for %d tokens of %d features", len(in.Context), n, k)
		}
		c, err := ort.NewTensor(ort.NewShape(int64(n), int64(k)), in.Context)
		if err != nil {
			return nil, err
		}
		defer c.Destroy()
		ins = append(ins, c)
	}
	outs := []ort.Value{nil}
	if err := s.sessions[i].Run(ins, outs); err != nil {
		return nil, fmt.Errorf("onnx predictors: stage %d: %w", i, err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("onnx predictors: stage %d returned %T", i, outs[0])
	}
	data := t.GetData()
	scores := make([]float32, n)
	for j := range scores {
		if s.outputs[i] == "logits" {
			scores[j] = data[2*j] - data[2*j+1]
		} else {
			scores[j] = data[j]
		}
		if math.IsNaN(float64(scores[j])) {
			return nil, fmt.Errorf("onnx predictors: stage %d produced NaN", i)
		}
	}
	return scores, nil
}

// WriteSet writes one ONNX file per stage (stage0.onnx, …) and
// predictors.json into dir; m.Files is filled in.
func WriteSet(dir string, m Manifest, mlps []predictor.MLP) error {
	if len(mlps) != len(m.Layers) {
		return fmt.Errorf("onnx: %d predictors for %d stages", len(mlps), len(m.Layers))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	m.Files, m.ContextFeatures = nil, nil
	for i, mlp := range mlps {
		if mlp.Context != mlps[0].Context {
			return errors.New("onnx: the stages' predictors must all read context features, or none")
		}
		if mlp.Context > 0 {
			m.ContextFeatures = sdtp.ContextFeatures
		}
		name := fmt.Sprintf("stage%d.onnx", i)
		if err := WriteMLP(filepath.Join(dir, name), mlp); err != nil {
			return err
		}
		m.Files = append(m.Files, name)
	}
	if err := m.validate(); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestName), append(raw, '\n'), 0o644)
}

// Hybrid is the set fused with the question attention by its fusion
// block, or predictor.DefaultFusion when it has none.
func (s *Set) Hybrid() (*predictor.Hybrid, error) {
	f := predictor.DefaultFusion(len(s.Manifest.Layers))
	if s.Manifest.Fusion != nil {
		f = *s.Manifest.Fusion
	}
	return predictor.NewHybrid(s, s.Manifest.Layers, f)
}
