// Package testmodel writes tiny random-weight GGUF models that llama.cpp
// loads and runs, for tests that need a real model file without downloading
// one. Weights are drawn from a seeded normal distribution, so a given Config
// always produces byte-identical files.
//
// Supported architectures: llama, qwen2, qwen3, gemma3 and mistral3. The
// vocabulary is a small SentencePiece-style ("llama" tokenizer model)
// vocabulary with byte fallback, so any UTF-8 text round-trips through
// llama.cpp's tokenizer.
package testmodel

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/go-sdtp/sdtp/gguf"
)

// Supported architectures (general.architecture values).
const (
	ArchLlama  = "llama"
	ArchGemma3 = "gemma3"
	ArchQwen2  = "qwen2" // llama with Q/K/V biases
	ArchQwen3  = "qwen3" // llama with per-head Q/K norms
	// ArchMistral3 has llama's tensors under another name: llama.cpp runs
	// it, the staged engine does not, which is what tests of the
	// unsupported-architecture path need.
	ArchMistral3 = "mistral3"
)

// Config describes a tiny model.
type Config struct {
	Arch string // one of the Arch constants
	Name string // general.name; defaults to "sdtp-testmodel-<arch>"

	NLayer        int
	NEmbd         int
	NHead         int
	NHeadKV       int
	HeadDim       int // for llama it must equal NEmbd/NHead (llama.cpp checks)
	NFF           int
	ContextLength int

	// SlidingWindow is the attention window of gemma3's local layers
	// (gemma3.attention.sliding_window). llama.cpp makes every layer with
	// il%6 < 5 a sliding-window layer and every 6th layer global, so a
	// window > 0 requires NLayer >= 6. 0 disables SWA (all layers global).
	// Ignored for llama.
	SlidingWindow int

	RopeFreqBase float32
	RMSNormEps   float32

	// TieEmbeddings omits output.weight; llama.cpp then uses token_embd as
	// the output projection.
	TieEmbeddings bool
	// AddSpacePrefix is tokenizer.ggml.add_space_prefix (SentencePiece's
	// dummy prefix): true for Llama-2 style vocabularies, false for Gemma.
	AddSpacePrefix bool
	// ChatTemplate, if non-empty, is stored as tokenizer.chat_template.
	ChatTemplate string
	// ControlTokens are appended to the vocabulary as control tokens (e.g.
	// ChatML's "<|im_start|>", "<|im_end|>"), after every other token, so
	// the ids of BuildVocab's tokens do not move.
	ControlTokens []string

	// WeightStd is the standard deviation of the random weight matrices
	// (default 0.05). Norm weights are 1.
	WeightStd float64
	Seed      uint64
	// WeightType is the type of the 2-D weight matrices: F32 (the zero
	// value), F16 or Q8_0 (norm vectors and biases stay F32, as llama.cpp's
	// converter and quantizer leave them).
	WeightType gguf.GGMLType
}

// Llama returns a 4-layer llama config: n_embd 64, 4 heads (head_dim 16),
// 2 KV heads, n_ff 128, context 2048, separate output matrix.
func Llama() Config {
	return Config{
		Arch:           ArchLlama,
		NLayer:         4,
		NEmbd:          64,
		NHead:          4,
		NHeadKV:        2,
		HeadDim:        16,
		NFF:            128,
		ContextLength:  2048,
		RopeFreqBase:   10000,
		RMSNormEps:     1e-5,
		AddSpacePrefix: true,
		WeightStd:      0.05,
		Seed:           1,
	}
}

// Qwen2 is Llama() as a qwen2 model, with random Q/K/V biases and tied
// embeddings.
func Qwen2() Config {
	c := Llama()
	c.Arch, c.TieEmbeddings, c.RopeFreqBase, c.RMSNormEps = ArchQwen2, true, 1e6, 1e-6
	return c
}

// Qwen3 is Llama() as a qwen3 model: per-head Q/K norms, head_dim 32
// (independent of n_embd/n_head, as in real Qwen3 models).
func Qwen3() Config {
	c := Llama()
	c.Arch, c.HeadDim, c.RopeFreqBase, c.RMSNormEps = ArchQwen3, 32, 1e6, 1e-6
	return c
}

// Qwen2Chat is Qwen2() as an instruct model: ChatML control tokens and a
// ChatML chat template, which llama.cpp recognises as its "chatml" format.
func Qwen2Chat() Config {
	c := Qwen2()
	c.ChatTemplate, c.ControlTokens = ChatMLTemplate, []string{"<|im_start|>", "<|im_end|>"}
	return c
}

// ChatMLTemplate is a ChatML chat template in Jinja, as Qwen2 instruct
// models ship it (without the tool-calling branches).
const ChatMLTemplate = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// Mistral3 is Llama() as a mistral3 model.
func Mistral3() Config {
	c := Llama()
	c.Arch = ArchMistral3
	return c
}

// Gemma3 returns a 6-layer gemma3 config: n_embd 64, 4 heads of head_dim
// 16, 2 KV heads, n_ff 128, context 2048, sliding window 32 (layers 0-4 use
// SWA, layer 5 is global, as llama.cpp's gemma3 pattern dictates), tied
// embeddings, no space prefix and a Gemma chat template.
func Gemma3() Config {
	return Config{
		Arch:           ArchGemma3,
		NLayer:         6,
		NEmbd:          64,
		NHead:          4,
		NHeadKV:        2,
		HeadDim:        16,
		NFF:            128,
		ContextLength:  2048,
		SlidingWindow:  32,
		RopeFreqBase:   1e6,
		RMSNormEps:     1e-6,
		TieEmbeddings:  true,
		AddSpacePrefix: false,
		ChatTemplate:   gemmaChatTemplate,
		WeightStd:      0.05,
		Seed:           1,
	}
}

const gemmaChatTemplate = `{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}`

func (c Config) validate() error {
	if !slices.Contains([]string{ArchLlama, ArchGemma3, ArchQwen2, ArchQwen3, ArchMistral3}, c.Arch) {
		return fmt.Errorf("testmodel: unsupported architecture %q", c.Arch)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"NLayer", c.NLayer}, {"NEmbd", c.NEmbd}, {"NHead", c.NHead}, {"NHeadKV", c.NHeadKV},
		{"HeadDim", c.HeadDim}, {"NFF", c.NFF}, {"ContextLength", c.ContextLength}} {
		if p.v <= 0 {
			return fmt.Errorf("testmodel: %s must be > 0", p.name)
		}
	}
	if c.NHead%c.NHeadKV != 0 {
		return fmt.Errorf("testmodel: NHead %d is not a multiple of NHeadKV %d", c.NHead, c.NHeadKV)
	}
	if (c.Arch == ArchLlama || c.Arch == ArchQwen2 || c.Arch == ArchMistral3) && c.HeadDim*c.NHead != c.NEmbd {
		return fmt.Errorf("testmodel: llama needs HeadDim*NHead == NEmbd (%d*%d != %d)", c.HeadDim, c.NHead, c.NEmbd)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("testmodel: HeadDim must be even for RoPE")
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("testmodel: negative SlidingWindow")
	}
	if c.Arch == ArchGemma3 && c.SlidingWindow > 0 && c.NLayer < 6 {
		// llama.cpp's gemma3 pattern makes layer 5 the first global layer;
		// with fewer layers the non-SWA KV cache is empty and llama_decode
		// aborts (GGML_ASSERT(buffer) in ggml-backend.cpp).
		return fmt.Errorf("testmodel: gemma3 with a sliding window needs NLayer >= 6 (layer 5 is the first global layer), got %d; set SlidingWindow = 0 for fewer layers", c.NLayer)
	}
	return nil
}

// Write writes the model described by cfg to path.
func Write(path string, cfg Config) error {
	w, err := Build(cfg)
	if err != nil {
		return err
	}
	return w.WriteFile(path)
}

// Build returns a gguf.Writer holding the model, so callers can add or
// change metadata and tensors before writing it.
func Build(cfg Config) (*gguf.Writer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.WeightStd == 0 {
		cfg.WeightStd = 0.05
	}
	if cfg.Name == "" {
		cfg.Name = "sdtp-testmodel-" + cfg.Arch
	}
	vocab, err := BuildVocab(cfg.Arch)
	if err != nil {
		return nil, err
	}
	for _, t := range cfg.ControlTokens {
		if vocab.ID(t) >= 0 {
			return nil, fmt.Errorf("testmodel: control token %q is already in the vocabulary", t)
		}
		vocab.Tokens = append(vocab.Tokens, t)
		vocab.Scores = append(vocab.Scores, 0)
		vocab.Types = append(vocab.Types, TokenTypeControl)
	}
	w := gguf.NewWriter()
	a := cfg.Arch
	u32 := func(v int) gguf.Value { return gguf.Uint32(uint32(v)) }

	// general.file_type: LLAMA_FTYPE_ALL_F32, _MOSTLY_F16, _MOSTLY_Q8_0.
	fileType, ok := map[gguf.GGMLType]int{gguf.GGMLTypeF32: 0, gguf.GGMLTypeF16: 1, gguf.GGMLTypeQ8_0: 7}[cfg.WeightType]
	if !ok {
		return nil, fmt.Errorf("testmodel: weight type %s is not one of f32, f16, q8_0", cfg.WeightType)
	}
	w.Set("general.architecture", gguf.String(a))
	w.Set("general.name", gguf.String(cfg.Name))
	w.Set("general.file_type", u32(fileType))
	w.Set(a+".vocab_size", u32(vocab.Size()))
	w.Set(a+".context_length", u32(cfg.ContextLength))
	w.Set(a+".embedding_length", u32(cfg.NEmbd))
	w.Set(a+".block_count", u32(cfg.NLayer))
	w.Set(a+".feed_forward_length", u32(cfg.NFF))
	w.Set(a+".attention.head_count", u32(cfg.NHead))
	w.Set(a+".attention.head_count_kv", u32(cfg.NHeadKV))
	w.Set(a+".attention.key_length", u32(cfg.HeadDim))
	w.Set(a+".attention.value_length", u32(cfg.HeadDim))
	w.Set(a+".attention.layer_norm_rms_epsilon", gguf.Float32(cfg.RMSNormEps))
	w.Set(a+".rope.freq_base", gguf.Float32(cfg.RopeFreqBase))
	w.Set(a+".rope.dimension_count", u32(cfg.HeadDim))
	if a == ArchGemma3 && cfg.SlidingWindow > 0 {
		w.Set(a+".attention.sliding_window", u32(cfg.SlidingWindow))
	}

	w.Set("tokenizer.ggml.model", gguf.String("llama"))
	w.Set("tokenizer.ggml.pre", gguf.String("default"))
	w.Set("tokenizer.ggml.tokens", gguf.Slice(vocab.Tokens))
	w.Set("tokenizer.ggml.scores", gguf.Slice(vocab.Scores))
	w.Set("tokenizer.ggml.token_type", gguf.Slice(vocab.Types))
	w.Set("tokenizer.ggml.bos_token_id", u32(vocab.BOS))
	w.Set("tokenizer.ggml.eos_token_id", u32(vocab.EOS))
	w.Set("tokenizer.ggml.unknown_token_id", u32(vocab.UNK))
	if vocab.PAD >= 0 {
		w.Set("tokenizer.ggml.padding_token_id", u32(vocab.PAD))
	}
	w.Set("tokenizer.ggml.add_bos_token", gguf.Bool(true))
	w.Set("tokenizer.ggml.add_eos_token", gguf.Bool(false))
	w.Set("tokenizer.ggml.add_space_prefix", gguf.Bool(cfg.AddSpacePrefix))
	if cfg.ChatTemplate != "" {
		w.Set("tokenizer.chat_template", gguf.String(cfg.ChatTemplate))
	}

	g := &gen{w: w, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5d7b_6d6f_6465_6c00)), std: cfg.WeightStd, typ: cfg.WeightType}
	nVocab, nEmbd, nFF := uint64(vocab.Size()), uint64(cfg.NEmbd), uint64(cfg.NFF)
	nQ := uint64(cfg.HeadDim * cfg.NHead)
	nKV := uint64(cfg.HeadDim * cfg.NHeadKV)
	hd := uint64(cfg.HeadDim)

	// Dims are in ggml order: {input features (contiguous), output features}.
	g.matrix("token_embd.weight", nEmbd, nVocab)
	for il := 0; il < cfg.NLayer; il++ {
		p := fmt.Sprintf("blk.%d.", il)
		g.norm(p+"attn_norm.weight", nEmbd)
		g.matrix(p+"attn_q.weight", nEmbd, nQ)
		g.matrix(p+"attn_k.weight", nEmbd, nKV)
		g.matrix(p+"attn_v.weight", nEmbd, nKV)
		g.matrix(p+"attn_output.weight", nQ, nEmbd)
		if a == ArchQwen2 {
			g.vector(p+"attn_q.bias", nQ)
			g.vector(p+"attn_k.bias", nKV)
			g.vector(p+"attn_v.bias", nKV)
		}
		if a == ArchQwen3 {
			g.norm(p+"attn_q_norm.weight", hd)
			g.norm(p+"attn_k_norm.weight", hd)
		}
		if a == ArchGemma3 {
			// The gemma converters store RMSNorm weights as (1 + w) and
			// llama.cpp multiplies by them as is, so 1 is the identity.
			g.norm(p+"attn_q_norm.weight", hd)
			g.norm(p+"attn_k_norm.weight", hd)
			g.norm(p+"post_attention_norm.weight", nEmbd)
		}
		g.norm(p+"ffn_norm.weight", nEmbd)
		g.matrix(p+"ffn_gate.weight", nEmbd, nFF)
		g.matrix(p+"ffn_up.weight", nEmbd, nFF)
		g.matrix(p+"ffn_down.weight", nFF, nEmbd)
		if a == ArchGemma3 {
			g.norm(p+"post_ffw_norm.weight", nEmbd)
		}
	}
	g.norm("output_norm.weight", nEmbd)
	if !cfg.TieEmbeddings {
		g.matrix("output.weight", nEmbd, nVocab)
	}
	if g.err != nil {
		return nil, g.err
	}
	return w, nil
}

type gen struct {
	w   *gguf.Writer
	rng *rand.Rand
	std float64
	typ gguf.GGMLType // of the matrices
	err error
}

func (g *gen) matrix(name string, cols, rows uint64) {
	v := make([]float32, cols*rows)
	for i := range v {
		v[i] = float32(g.rng.NormFloat64() * g.std)
	}
	var data []byte
	switch g.typ {
	case gguf.GGMLTypeF16:
		data = gguf.EncodeF16(v)
	case gguf.GGMLTypeQ8_0:
		var err error
		if data, err = gguf.EncodeQ8_0(v); err != nil && g.err == nil {
			g.err = fmt.Errorf("testmodel: %s: %w", name, err)
		}
	default:
		data = gguf.EncodeF32(v)
	}
	g.add(name, g.typ, []uint64{cols, rows}, data)
}

// vector writes a random F32 vector (biases).
func (g *gen) vector(name string, n uint64) {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(g.rng.NormFloat64() * g.std)
	}
	g.add(name, gguf.GGMLTypeF32, []uint64{n}, gguf.EncodeF32(v))
}

func (g *gen) norm(name string, n uint64) {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	g.add(name, gguf.GGMLTypeF32, []uint64{n}, gguf.EncodeF32(v))
}

func (g *gen) add(name string, typ gguf.GGMLType, dims []uint64, data []byte) {
	if g.err == nil {
		g.err = g.w.AddTensor(name, typ, dims, data)
	}
}
