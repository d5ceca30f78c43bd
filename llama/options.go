package llama

import (
	"errors"
	"fmt"
)

// ModelOptions are the load-time settings of a model. The field set and
// defaults are go-skynet/go-llama.cpp's, so existing code keeps compiling;
// fields that current llama.cpp no longer has are accepted and documented
// as no-ops.
type ModelOptions struct {
	ContextSize int  // context window in tokens; 0 = the model's training context
	Seed        int  // no-op: sampling seeds are per prediction (PredictOptions.Seed)
	NBatch      int  // tokens per llama_decode call
	F16Memory   bool // no-op: the KV cache is F16 by default in llama.cpp
	MLock       bool
	MMap        bool
	LowVRAM     bool // no-op: removed from llama.cpp
	Embeddings  bool // required by Embeddings and TokenEmbeddings
	NUMA        bool
	NGPULayers  int
	MainGPU     string // device index as text, e.g. "0"
	TensorSplit string // comma-separated proportions, e.g. "3,1"
	// FreqRopeBase and FreqRopeScale override the model's RoPE settings.
	// Their defaults (10000 and 1.0) mean "use the values in the GGUF":
	// llama.cpp now reads them from the file, and forcing 10000 would break
	// models trained with another base.
	FreqRopeBase  float32
	FreqRopeScale float32
	MulMatQ       *bool  // no-op: llama.cpp picks its matmul kernels itself
	LoraBase      string // no-op: adapters apply to the loaded weights directly
	LoraAdapter   string // path of a GGUF LoRA adapter applied with scale 1
	Perplexity    bool   // no-op

	// Progress, when set, receives the load progress in [0, 1]; returning
	// false aborts New. (An addition to go-llama.cpp's options.)
	Progress func(float32) bool
	// SDTP selects token pruning during prefill (WithSDTP); the zero value
	// is llama.cpp's own dense path.
	SDTP SDTPOptions
}

// PredictOptions are the per-call settings of Predict, Eval, Embeddings,
// TokenizeString and SpeculativeSampling. Edge values mean what llama.cpp
// and go-llama.cpp mean by them (docs/ERRORS.md has the table): Tokens 0,
// −1 or −2 = until end of generation or a full window; Threads 0 or −1 =
// all cores; Repeat 0 = no penalty, −1 = the whole context; TopK 0 and
// TopP/TypicalP 1 = off, TopP 0 = the most likely token only; Seed −1 =
// random; NKeep −1 = the whole prompt. Values without a meaning (Batch 0,
// Penalty 0, Repeat −2, ...) are refused with an error naming them.
type PredictOptions struct {
	Seed, Threads, Tokens, TopK, Repeat, Batch, NKeep int
	TopP, Temperature, Penalty                        float32
	NDraft                                            int  // tokens drafted per step in SpeculativeSampling
	F16KV                                             bool // no-op: the KV cache type is fixed at load
	DebugMode                                         bool // print timings to stderr
	StopPrompts                                       []string
	IgnoreEOS                                         bool

	TailFreeSamplingZ float32 // tail-free sampling was removed from llama.cpp: 1 or 0 (off) only
	TypicalP          float32
	FrequencyPenalty  float32
	PresencePenalty   float32
	Mirostat          int
	MirostatETA       float32
	MirostatTAU       float32
	PenalizeNL        bool   // no-op: llama.cpp's penalty sampler no longer special-cases newlines
	LogitBias         string // "TOKEN+BIAS" or "TOKEN-BIAS" entries, separated by spaces or commas
	TokenCallback     func(string) bool

	PathPromptCache             string // state file reused across calls with a common prompt prefix
	MLock, MMap, PromptCacheAll bool   // MLock and MMap are no-ops here (see ModelOptions)
	PromptCacheRO               bool
	Grammar                     string // GBNF grammar with a "root" rule
	MainGPU                     string // no-op: devices are chosen at load (ModelOptions)
	TensorSplit                 string // no-op: devices are chosen at load (ModelOptions)

	// RoPE settings are fixed when the context is created (ModelOptions):
	// these two are no-ops.
	RopeFreqBase  float32
	RopeFreqScale float32

	// Classifier-free guidance was removed from llama.cpp: a NegativePrompt
	// is refused, and the scale is a no-op.
	NegativePromptScale float32
	NegativePrompt      string

	nDraftSet bool // SetNDraft was given: 0 then means no drafting
}

// check refuses values with no meaning and maps llama.cpp's special values
// onto this package's: Tokens −1 ("infinity") and −2 ("until the context
// is full") become 0, and Threads −1 ("auto") becomes 0 (all cores).
// Repeat −1 (the whole context) is resolved where the context size is
// known (newSampler). docs/ERRORS.md has the table of edge values.
func (po *PredictOptions) check() error {
	if po.Tokens == -1 || po.Tokens == -2 {
		po.Tokens = 0
	}
	if po.Threads == -1 {
		po.Threads = 0
	}
	switch {
	case po.Tokens < 0:
		return fmt.Errorf("llama: tokens to predict %d: want a count, 0 or -1 (until end of generation), or -2 (until the context is full)", po.Tokens)
	case po.Threads < 0:
		return fmt.Errorf("llama: threads %d is negative (0 or -1 = all cores)", po.Threads)
	case po.Batch < 0:
		return fmt.Errorf("llama: batch %d is negative", po.Batch)
	case po.Batch == 0:
		return errors.New("llama: batch 0: want at least 1 token per llama_decode call")
	case po.Repeat < -1:
		return fmt.Errorf("llama: repeat (last tokens penalised) %d: want a count, 0 (off) or -1 (the whole context)", po.Repeat)
	case !(po.Penalty > 0):
		return fmt.Errorf("llama: repeat penalty %v: want a positive factor (1 = off)", po.Penalty)
	case po.NKeep < -1:
		return fmt.Errorf("llama: NKeep %d: want a count, 0, or -1 (the whole prompt)", po.NKeep)
	case po.NDraft < 0:
		return fmt.Errorf("llama: NDraft %d is negative", po.NDraft)
	case po.TailFreeSamplingZ > 0 && po.TailFreeSamplingZ < 1:
		return fmt.Errorf("llama: tail-free sampling (TailFreeSamplingZ %v) was removed from llama.cpp; 1 or 0 = off", po.TailFreeSamplingZ)
	case po.NegativePrompt != "":
		return errors.New("llama: NegativePrompt: classifier-free guidance was removed from llama.cpp")
	case po.Temperature != po.Temperature || po.TopP != po.TopP || po.TypicalP != po.TypicalP:
		return errors.New("llama: temperature, top-p and typical-p must not be NaN")
	}
	return nil
}

type PredictOption func(p *PredictOptions)

type ModelOption func(p *ModelOptions)

var DefaultModelOptions ModelOptions = ModelOptions{
	ContextSize:   512,
	Seed:          0,
	F16Memory:     false,
	MLock:         false,
	Embeddings:    false,
	MMap:          true,
	LowVRAM:       false,
	NBatch:        512,
	FreqRopeBase:  10000,
	FreqRopeScale: 1.0,
}

var DefaultOptions PredictOptions = PredictOptions{
	Seed:              -1,
	Threads:           4,
	Tokens:            128,
	Penalty:           1.1,
	Repeat:            64,
	Batch:             512,
	NKeep:             64,
	TopK:              40,
	TopP:              0.95,
	TailFreeSamplingZ: 1.0,
	TypicalP:          1.0,
	Temperature:       0.8,
	FrequencyPenalty:  0.0,
	PresencePenalty:   0.0,
	Mirostat:          0,
	MirostatTAU:       5.0,
	MirostatETA:       0.1,
	MMap:              true,
	RopeFreqBase:      10000,
	RopeFreqScale:     1.0,
}

// NewModelOptions applies opts over DefaultModelOptions.
func NewModelOptions(opts ...ModelOption) ModelOptions {
	mo := DefaultModelOptions
	for _, o := range opts {
		o(&mo)
	}
	return mo
}

// NewPredictOptions applies opts over DefaultOptions.
func NewPredictOptions(opts ...PredictOption) PredictOptions {
	po := DefaultOptions
	for _, o := range opts {
		o(&po)
	}
	return po
}

// Model options.

func SetContext(c int) ModelOption          { return func(p *ModelOptions) { p.ContextSize = c } }
func SetModelSeed(c int) ModelOption        { return func(p *ModelOptions) { p.Seed = c } }
func SetNBatch(n_batch int) ModelOption     { return func(p *ModelOptions) { p.NBatch = n_batch } }
func SetGPULayers(n int) ModelOption        { return func(p *ModelOptions) { p.NGPULayers = n } }
func SetMMap(b bool) ModelOption            { return func(p *ModelOptions) { p.MMap = b } }
func SetMainGPU(maingpu string) ModelOption { return func(p *ModelOptions) { p.MainGPU = maingpu } }
func SetTensorSplit(maingpu string) ModelOption {
	return func(p *ModelOptions) { p.TensorSplit = maingpu }
}
func SetMulMatQ(b bool) ModelOption           { return func(p *ModelOptions) { p.MulMatQ = &b } }
func SetPerplexity(b bool) ModelOption        { return func(p *ModelOptions) { p.Perplexity = b } }
func SetLoraBase(s string) ModelOption        { return func(p *ModelOptions) { p.LoraBase = s } }
func SetLoraAdapter(s string) ModelOption     { return func(p *ModelOptions) { p.LoraAdapter = s } }
func WithRopeFreqBase(f float32) ModelOption  { return func(p *ModelOptions) { p.FreqRopeBase = f } }
func WithRopeFreqScale(f float32) ModelOption { return func(p *ModelOptions) { p.FreqRopeScale = f } }

// SetLoadProgress reports model loading progress to fn.
func SetLoadProgress(fn func(float32) bool) ModelOption {
	return func(p *ModelOptions) { p.Progress = fn }
}

var (
	EnabelLowVRAM    ModelOption = func(p *ModelOptions) { p.LowVRAM = true } // sic: the original spelling
	EnableNUMA       ModelOption = func(p *ModelOptions) { p.NUMA = true }
	EnableEmbeddings ModelOption = func(p *ModelOptions) { p.Embeddings = true }
	EnableF16Memory  ModelOption = func(p *ModelOptions) { p.F16Memory = true }
	EnableMLock      ModelOption = func(p *ModelOptions) { p.MLock = true }
)

// Predict options.

func SetSeed(seed int) PredictOption       { return func(p *PredictOptions) { p.Seed = seed } }
func SetThreads(threads int) PredictOption { return func(p *PredictOptions) { p.Threads = threads } }
func SetTokens(tokens int) PredictOption   { return func(p *PredictOptions) { p.Tokens = tokens } }
func SetTopK(topk int) PredictOption       { return func(p *PredictOptions) { p.TopK = topk } }
func SetTopP(topp float32) PredictOption   { return func(p *PredictOptions) { p.TopP = topp } }
func SetTemperature(temp float32) PredictOption {
	return func(p *PredictOptions) { p.Temperature = temp }
}
func SetPenalty(penalty float32) PredictOption {
	return func(p *PredictOptions) { p.Penalty = penalty }
}
func SetRepeat(repeat int) PredictOption { return func(p *PredictOptions) { p.Repeat = repeat } }
func SetBatch(size int) PredictOption    { return func(p *PredictOptions) { p.Batch = size } }
func SetNKeep(n int) PredictOption       { return func(p *PredictOptions) { p.NKeep = n } }
func SetNDraft(nd int) PredictOption {
	return func(p *PredictOptions) { p.NDraft, p.nDraftSet = nd, true }
}
func SetMirostat(m int) PredictOption         { return func(p *PredictOptions) { p.Mirostat = m } }
func SetMirostatETA(me float32) PredictOption { return func(p *PredictOptions) { p.MirostatETA = me } }
func SetMirostatTAU(mt float32) PredictOption { return func(p *PredictOptions) { p.MirostatTAU = mt } }
func SetTypicalP(tp float32) PredictOption    { return func(p *PredictOptions) { p.TypicalP = tp } }
func SetTailFreeSamplingZ(tfz float32) PredictOption {
	return func(p *PredictOptions) { p.TailFreeSamplingZ = tfz }
}
func SetFrequencyPenalty(fp float32) PredictOption {
	return func(p *PredictOptions) { p.FrequencyPenalty = fp }
}
func SetPresencePenalty(pp float32) PredictOption {
	return func(p *PredictOptions) { p.PresencePenalty = pp }
}
func SetPenalizeNL(pnl bool) PredictOption { return func(p *PredictOptions) { p.PenalizeNL = pnl } }
func SetLogitBias(lb string) PredictOption { return func(p *PredictOptions) { p.LogitBias = lb } }
func SetPathPromptCache(f string) PredictOption {
	return func(p *PredictOptions) { p.PathPromptCache = f }
}
func SetMlock(b bool) PredictOption      { return func(p *PredictOptions) { p.MLock = b } }
func SetMemoryMap(b bool) PredictOption  { return func(p *PredictOptions) { p.MMap = b } }
func WithGrammar(s string) PredictOption { return func(p *PredictOptions) { p.Grammar = s } }
func SetRopeFreqBase(rfb float32) PredictOption {
	return func(p *PredictOptions) { p.RopeFreqBase = rfb }
}
func SetRopeFreqScale(rfs float32) PredictOption {
	return func(p *PredictOptions) { p.RopeFreqScale = rfs }
}
func SetNegativePromptScale(nps float32) PredictOption {
	return func(p *PredictOptions) { p.NegativePromptScale = nps }
}
func SetNegativePrompt(np string) PredictOption {
	return func(p *PredictOptions) { p.NegativePrompt = np }
}
func SetPredictionMainGPU(maingpu string) PredictOption {
	return func(p *PredictOptions) { p.MainGPU = maingpu }
}
func SetPredictionTensorSplit(maingpu string) PredictOption {
	return func(p *PredictOptions) { p.TensorSplit = maingpu }
}

// SetStopWords ends a prediction when the output contains any of stop; the
// stop word itself is cut from the result.
func SetStopWords(stop ...string) PredictOption {
	return func(p *PredictOptions) { p.StopPrompts = stop }
}

// SetTokenCallback streams each piece of generated text to fn; returning
// false stops the prediction.
func SetTokenCallback(fn func(string) bool) PredictOption {
	return func(p *PredictOptions) { p.TokenCallback = fn }
}

var (
	EnableF16KV          PredictOption = func(p *PredictOptions) { p.F16KV = true }
	Debug                PredictOption = func(p *PredictOptions) { p.DebugMode = true }
	EnablePromptCacheAll PredictOption = func(p *PredictOptions) { p.PromptCacheAll = true }
	EnablePromptCacheRO  PredictOption = func(p *PredictOptions) { p.PromptCacheRO = true }
	IgnoreEOS            PredictOption = func(p *PredictOptions) { p.IgnoreEOS = true }
)
