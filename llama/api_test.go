package llama

// This file pins the go-skynet/go-llama.cpp API: every exported identifier
// with its exact type. If a signature drifts, the package's tests stop
// compiling, so a drop-in user would never see the break first.

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

var (
	_ func(string, ...ModelOption) (*LLama, error) = New
	_ func(...ModelOption) ModelOptions            = NewModelOptions
	_ func(...PredictOption) PredictOptions        = NewPredictOptions
	_ ModelOptions                                 = DefaultModelOptions
	_ PredictOptions                               = DefaultOptions

	_ func(*LLama)                                                   = (*LLama).Free
	_ func(*LLama, string) error                                     = (*LLama).LoadState
	_ func(*LLama, string) error                                     = (*LLama).SaveState
	_ func(*LLama, string, ...PredictOption) error                   = (*LLama).Eval
	_ func(*LLama, string, ...PredictOption) (string, error)         = (*LLama).Predict
	_ func(*LLama, *LLama, string, ...PredictOption) (string, error) = (*LLama).SpeculativeSampling
	_ func(*LLama, string, ...PredictOption) ([]float32, error)      = (*LLama).Embeddings
	_ func(*LLama, []int, ...PredictOption) ([]float32, error)       = (*LLama).TokenEmbeddings
	_ func(*LLama, string, ...PredictOption) (int32, []int32, error) = (*LLama).TokenizeString
	_ func(*LLama, func(string) bool)                                = (*LLama).SetTokenCallback

	_ func(int) ModelOption     = SetContext
	_ func(int) ModelOption     = SetModelSeed
	_ func(int) ModelOption     = SetNBatch
	_ func(int) ModelOption     = SetGPULayers
	_ func(bool) ModelOption    = SetMMap
	_ func(string) ModelOption  = SetMainGPU
	_ func(string) ModelOption  = SetTensorSplit
	_ func(bool) ModelOption    = SetMulMatQ
	_ func(bool) ModelOption    = SetPerplexity
	_ func(string) ModelOption  = SetLoraBase
	_ func(string) ModelOption  = SetLoraAdapter
	_ func(float32) ModelOption = WithRopeFreqBase
	_ func(float32) ModelOption = WithRopeFreqScale
	_ ModelOption               = EnabelLowVRAM
	_ ModelOption               = EnableNUMA
	_ ModelOption               = EnableEmbeddings
	_ ModelOption               = EnableF16Memory
	_ ModelOption               = EnableMLock

	_ func(int) PredictOption               = SetSeed
	_ func(int) PredictOption               = SetThreads
	_ func(int) PredictOption               = SetTokens
	_ func(int) PredictOption               = SetTopK
	_ func(int) PredictOption               = SetRepeat
	_ func(int) PredictOption               = SetBatch
	_ func(int) PredictOption               = SetNKeep
	_ func(int) PredictOption               = SetNDraft
	_ func(int) PredictOption               = SetMirostat
	_ func(float32) PredictOption           = SetTopP
	_ func(float32) PredictOption           = SetTemperature
	_ func(float32) PredictOption           = SetPenalty
	_ func(float32) PredictOption           = SetTailFreeSamplingZ
	_ func(float32) PredictOption           = SetTypicalP
	_ func(float32) PredictOption           = SetFrequencyPenalty
	_ func(float32) PredictOption           = SetPresencePenalty
	_ func(float32) PredictOption           = SetMirostatETA
	_ func(float32) PredictOption           = SetMirostatTAU
	_ func(float32) PredictOption           = SetRopeFreqBase
	_ func(float32) PredictOption           = SetRopeFreqScale
	_ func(float32) PredictOption           = SetNegativePromptScale
	_ func(bool) PredictOption              = SetPenalizeNL
	_ func(bool) PredictOption              = SetMlock
	_ func(bool) PredictOption              = SetMemoryMap
	_ func(string) PredictOption            = SetLogitBias
	_ func(string) PredictOption            = SetPathPromptCache
	_ func(string) PredictOption            = WithGrammar
	_ func(string) PredictOption            = SetNegativePrompt
	_ func(string) PredictOption            = SetPredictionMainGPU
	_ func(string) PredictOption            = SetPredictionTensorSplit
	_ func(...string) PredictOption         = SetStopWords
	_ func(func(string) bool) PredictOption = SetTokenCallback
	_ PredictOption                         = EnableF16KV
	_ PredictOption                         = Debug
	_ PredictOption                         = EnablePromptCacheAll
	_ PredictOption                         = EnablePromptCacheRO
	_ PredictOption                         = IgnoreEOS
)

// The exported fields, with go-llama.cpp's names, types and order.
var _ = ModelOptions{
	ContextSize: 0, Seed: 0, NBatch: 0, F16Memory: false, MLock: false, MMap: false, LowVRAM: false,
	Embeddings: false, NUMA: false, NGPULayers: 0, MainGPU: "", TensorSplit: "",
	FreqRopeBase: float32(0), FreqRopeScale: float32(0), MulMatQ: (*bool)(nil),
	LoraBase: "", LoraAdapter: "", Perplexity: false,
}

var _ = PredictOptions{
	Seed: 0, Threads: 0, Tokens: 0, TopK: 0, Repeat: 0, Batch: 0, NKeep: 0,
	TopP: float32(0), Temperature: float32(0), Penalty: float32(0), NDraft: 0,
	F16KV: false, DebugMode: false, StopPrompts: []string(nil), IgnoreEOS: false,
	TailFreeSamplingZ: float32(0), TypicalP: float32(0), FrequencyPenalty: float32(0),
	PresencePenalty: float32(0), Mirostat: 0, MirostatETA: float32(0), MirostatTAU: float32(0),
	PenalizeNL: false, LogitBias: "", TokenCallback: (func(string) bool)(nil),
	PathPromptCache: "", MLock: false, MMap: false, PromptCacheAll: false, PromptCacheRO: false,
	Grammar: "", MainGPU: "", TensorSplit: "", RopeFreqBase: float32(0), RopeFreqScale: float32(0),
	NegativePromptScale: float32(0), NegativePrompt: "",
}

func TestDefaultsMatchGoLlamaCpp(t *testing.T) {
	assert.Equal(t, ModelOptions{ContextSize: 512, MMap: true, NBatch: 512, FreqRopeBase: 10000, FreqRopeScale: 1}, DefaultModelOptions)
	assert.Equal(t, PredictOptions{
		Seed: -1, Threads: 4, Tokens: 128, Penalty: 1.1, Repeat: 64, Batch: 512, NKeep: 64, TopK: 40, TopP: 0.95,
		TailFreeSamplingZ: 1, TypicalP: 1, Temperature: 0.8, MirostatTAU: 5, MirostatETA: 0.1, MMap: true,
		RopeFreqBase: 10000, RopeFreqScale: 1,
	}, DefaultOptions)
	po := NewPredictOptions(SetTokens(7), SetStopWords("a", "b"), IgnoreEOS)
	assert.Equal(t, 7, po.Tokens)
	assert.Equal(t, []string{"a", "b"}, po.StopPrompts)
	assert.True(t, po.IgnoreEOS)
	assert.Equal(t, DefaultOptions.TopK, po.TopK)
}
