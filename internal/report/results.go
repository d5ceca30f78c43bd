// Package report is the sdtp-bench results format (one JSON document per
// invocation) and what is made from a set of them: docs/BENCHMARKS.md with
// its tables and PNG plots. It reads JSON only, so it is tested on
// synthetic results without a model.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Kinds of runs: sdtp-bench's default speed comparison, --quality,
// --passkey, --mc, and the fidelity suite (--ruler, --qa).
const (
	KindSpeed    = "speed"
	KindQuality  = "quality"
	KindPasskey  = "passkey"
	KindMC       = "mc"
	KindFidelity = "fidelity"
)

// Run is one sdtp-bench invocation: how and where it ran, and its rows.
type Run struct {
	Kind       string  `json:"kind"`
	Command    string  `json:"command"`
	Date       string  `json:"date"` // RFC 3339, when the run started
	WallS      float64 `json:"wall_s"`
	Model      string  `json:"model"`
	ModelFile  string  `json:"model_file"`
	Threads    int     `json:"threads"`
	BuildFlags string  `json:"build_flags"`
	CPU        string  `json:"cpu_features"`
	CPUModel   string  `json:"cpu_model"`
	Cores      int     `json:"cores"`
	GoVersion  string  `json:"go_version"`
	// The default schedule of this model: a row at these layers and this
	// keep ratio is the configuration users get without flags.
	DefaultKeepRatio   float64 `json:"default_keep_ratio"`
	DefaultPruneLayers []int   `json:"default_prune_layers"`
	// SDTPScorer says what mode sdtp pruned with: learned predictors, or
	// the attention scorer they fall back to.
	SDTPScorer    string    `json:"sdtp_scorer"`
	PasskeyDepths []float64 `json:"passkey_depths,omitempty"`
	// PromptFormat (fidelity runs): "chat" (the model's chat template) or
	// "completion" (a completion prompt ending in the answer prefix).
	PromptFormat string `json:"prompt_format,omitempty"`
	// AnswerCommits (fidelity runs): the commits of the code that
	// answered, for answers taken from the records of earlier runs too.
	AnswerCommits []string `json:"answer_commits,omitempty"`
	Results       []Row    `json:"results"`
}

// Row is one mode at one schedule and one prompt length.
type Row struct {
	Mode         string `json:"mode"`
	PromptTokens int    `json:"prompt_tokens"`
	// KeepRatio is the fraction of live tokens kept at every pruning
	// stage (1 for llamacpp and dense; 0 when learned predictors were
	// trained with differing per-stage ratios).
	KeepRatio   float64 `json:"keep_ratio"`
	PruneLayers []int   `json:"prune_layers,omitempty"`
	// CustomLayers: PruneLayers came from --prune-layers, not from the
	// mode itself (the default schedule, or the layers predictors were
	// trained for).
	CustomLayers bool `json:"custom_layers,omitempty"`
	// DefaultSchedule: the schedule the mode runs without sweep flags
	// (for learned predictors: the one they were trained with).
	DefaultSchedule bool `json:"default_schedule,omitempty"`

	PrefillMS          float64 `json:"prefill_ms"`
	DecodeTokS         float64 `json:"decode_tok_s"`
	KeptTokensPerLayer []int   `json:"kept_tokens_per_layer"`
	FLOPsPrefill       float64 `json:"flops_prefill"`
	FLOPRatioVsDense   float64 `json:"flop_ratio_vs_dense"`
	// KVBytes: the filled cells after the prefill (and the KV policy's
	// eviction); in quality rows the most the caches held during the
	// continuation.
	KVBytes int64 `json:"kv_bytes"`
	// KVPolicy compressed the per-layer caches after the prefill, to
	// KVBudget (a fraction of the prompt if <= 1, else tokens; docs/KV.md).
	// Empty: none.
	KVPolicy          string  `json:"kv_policy,omitempty"`
	KVBudget          float64 `json:"kv_budget,omitempty"`
	Top1VsLlamaCpp    float64 `json:"top1_vs_llamacpp"`
	MaxAbsLogitDiff   float64 `json:"max_abs_logit_diff_vs_llamacpp"`
	SpeedupVsLlamaCpp float64 `json:"prefill_speedup_vs_llamacpp"`
	// PredictorMS is the time spent in learned predictors, inside
	// prefill_ms: ONNX Runtime calls, or the in-graph head nodes.
	PredictorMS float64 `json:"predictor_ms,omitempty"`
	// Scorer is what pruned: "onnx", "gguf-heads" (learned predictors),
	// "attention", "random" (llama.SDTPStats.Scorer's names); empty for
	// llamacpp and dense. Mode sdtp without learned predictors for the
	// model shows "attention" here and "sdtp (attention)" in tables.
	Scorer string `json:"scorer,omitempty"`

	// Quality rows: teacher-forced continuation after a (pruned) prefill.
	Samples     int     `json:"samples,omitempty"`
	PPL         float64 `json:"ppl,omitempty"`
	KLVsDense   float64 `json:"kl_vs_dense,omitempty"`
	Top1VsDense float64 `json:"top1_vs_dense,omitempty"`
	// PPLRatioLow and PPLRatioHigh: the 95% interval of PPL / dense's
	// over the windows (paired; numeric.PerplexityRatio). Zero: dense
	// itself, one window, or a result from before they were recorded.
	PPLRatioLow  float64 `json:"ppl_vs_dense_ci_low,omitempty"`
	PPLRatioHigh float64 `json:"ppl_vs_dense_ci_high,omitempty"`
	// WindowNLL: the mean negative log-likelihood per continuation token
	// (nats) of each window, in window order, so that any two modes of a
	// run can be compared window by window (numeric.PerplexityRatio).
	WindowNLL []float64 `json:"window_nll,omitempty"`

	// Passkey rows: share of greedy answers containing the key, overall
	// and per depth (Run.PasskeyDepths).
	PasskeyAcc      float64   `json:"passkey_acc,omitempty"`
	PasskeyDepthAcc []float64 `json:"passkey_depth_acc,omitempty"`

	// Multiple-choice rows: accuracy (prompt_tokens is the mean prompt).
	MCAcc float64 `json:"mc_acc,omitempty"`

	// Fidelity rows: one task at one length in one mode.
	Fidelity *Fidelity `json:"fidelity,omitempty"`
}

// Families of fidelity tasks: the averages the report gives.
const (
	FamilyNeedles = "needles" // the synthetic retrieval tasks
	FamilyQA      = "qa"      // document QA
)

// Fidelity is a fidelity-suite cell: how many of Row.Samples prompts the
// mode answered right, with the 95% Wilson interval, per depth band, and
// prompt by prompt against dense.
type Fidelity struct {
	Task    string  `json:"task"`
	Family  string  `json:"family"`
	Correct int     `json:"correct"`
	Acc     float64 `json:"acc"`
	Low     float64 `json:"ci_low"`
	High    float64 `json:"ci_high"`
	// EM and F1: QA means over the prompts (first line of the answer).
	EM float64 `json:"em,omitempty"`
	F1 float64 `json:"f1,omitempty"`
	// Bands: where the asked needle (or first gold paragraph) started.
	Bands []Band `json:"bands,omitempty"`
	// Paired comparison with dense (Paired false: dense itself, or dense
	// was not run): prompts dense answered and the mode missed, and the
	// reverse.
	Paired    bool `json:"paired,omitempty"`
	DenseOnly int  `json:"dense_only"`
	ModeOnly  int  `json:"mode_only"`
	// ComputeS: prefill and decode seconds of all the cell's answers,
	// including those a resumed run took from its records (Cached).
	ComputeS float64 `json:"compute_s"`
	Cached   int     `json:"cached"`
}

// Band is the accuracy of the prompts whose needle started in [Lo, Hi)
// of the prompt.
type Band struct {
	Lo      float64 `json:"lo"`
	Hi      float64 `json:"hi"`
	N       int     `json:"n"`
	Correct int     `json:"correct"`
}

// Label names the row in tables: the mode, and for mode sdtp without
// learned predictors the scorer that ran instead ("sdtp (attention-acc)").
func (r Row) Label() string {
	learned := strings.TrimPrefix(r.Scorer, "hybrid/")
	if strings.HasPrefix(r.Mode, "sdtp") && r.Scorer != "" && learned != "onnx" && learned != "gguf-heads" {
		return r.Mode + " (" + r.Scorer + ")"
	}
	return r.Mode
}

// Reference says whether the row is an unpruned baseline.
func (r Row) Reference() bool { return r.Mode == "llamacpp" || r.Mode == "dense" }

// Layers names the row's pruning layers: "default" for the mode's own
// (the default schedule, or the predictors' trained layers), else the list.
func (r Row) Layers() string {
	if r.Reference() || (r.KVPolicy != "" && len(r.PruneLayers) == 0) { // e.g. dense+h2o
		return "-"
	}
	if !r.CustomLayers {
		return "default"
	}
	return joinInts(r.PruneLayers, ",")
}

// Default says whether the row is an unpruned baseline or its mode at the
// default schedule: the rows of the default tables.
func (r Row) Default() bool { return r.Reference() || r.DefaultSchedule }

// Load reads sdtp-bench JSON files.
func Load(paths []string) ([]Run, error) {
	var runs []Run
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var run Run
		if err := json.Unmarshal(raw, &run); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !slices.Contains([]string{KindSpeed, KindQuality, KindPasskey, KindMC, KindFidelity}, run.Kind) {
			return nil, fmt.Errorf("%s: unknown kind %q (not sdtp-bench --json output?)", p, run.Kind)
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// ofKind returns the runs of one kind, in input order.
func ofKind(runs []Run, kind string) []Run {
	var out []Run
	for _, r := range runs {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}
