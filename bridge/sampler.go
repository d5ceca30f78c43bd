package bridge

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// LogitBias adds Bias to the logit of Token before sampling.
type LogitBias struct {
	Token int32
	Bias  float32
}

// SamplerParams configure a llama.cpp sampler chain. The chain is built in
// llama.cpp's usual order: logit bias, grammar, the IgnoreEOS ban, penalties,
// a guard that fails when no token is left (rather than llama.cpp aborting
// the process), then either
// greedy (Temperature <= 0), mirostat, or top-k → typical → top-p → min-p →
// temperature → seeded draw.
type SamplerParams struct {
	Seed            uint32 // 0xFFFFFFFF = random
	Temperature     float32
	TopK            int
	TopP            float32
	MinP            float32
	TypicalP        float32
	RepeatLastN     int // tokens of history penalised; 0 = no penalties (llama.cpp reads -1 as 0: resolve "whole context" first)
	RepeatPenalty   float32
	FreqPenalty     float32
	PresencePenalty float32
	Mirostat        int // 0 off, 1 or 2
	MirostatTau     float32
	MirostatEta     float32
	LogitBias       []LogitBias
	Grammar         string // GBNF with a "root" rule; empty = none
	// IgnoreEOS bans end-of-generation tokens while any other token is
	// possible: a grammar that has matched completely still ends the
	// generation (it admits only EOG tokens then).
	IgnoreEOS bool
}

// Sampler is a llama.cpp sampler chain; not safe for concurrent use.
type Sampler struct {
	ptr *C.struct_llama_sampler
}

// NewSampler builds a sampler chain for model m.
func NewSampler(m *Model, p SamplerParams) (*Sampler, error) {
	if p.Mirostat < 0 || p.Mirostat > 2 {
		return nil, fmt.Errorf("sampler: mirostat must be 0, 1 or 2, got %d", p.Mirostat)
	}
	for _, b := range p.LogitBias {
		if !m.ValidToken(b.Token) {
			return nil, fmt.Errorf("sampler: logit bias for token %d outside the vocabulary of %d", b.Token, m.NVocab())
		}
	}
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	s := &Sampler{ptr: chain}
	add := func(smpl *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, smpl) }

	if len(p.LogitBias) > 0 {
		bias := make([]C.llama_logit_bias, len(p.LogitBias))
		for i, b := range p.LogitBias {
			bias[i] = C.llama_logit_bias{token: C.llama_token(b.Token), bias: C.float(b.Bias)}
		}
		add(C.llama_sampler_init_logit_bias(C.int32_t(m.NVocab()), C.int32_t(len(bias)), &bias[0]))
	}
	if p.Grammar != "" {
		g := C.CString(p.Grammar)
		root := C.CString("root")
		smpl := C.llama_sampler_init_grammar(m.vocab, g, root)
		C.free(unsafe.Pointer(g))
		C.free(unsafe.Pointer(root))
		if smpl == nil {
			s.Free()
			return nil, cError("", "sampler: invalid GBNF grammar")
		}
		add(smpl)
	}
	if p.IgnoreEOS {
		add(C.sdtp_sampler_init_ban_eog(m.vocab))
	}
	if p.RepeatLastN < 0 {
		s.Free()
		return nil, fmt.Errorf("sampler: repeat-last-n %d is negative", p.RepeatLastN)
	}
	if p.RepeatLastN != 0 && (p.RepeatPenalty != 1 || p.FreqPenalty != 0 || p.PresencePenalty != 0) {
		add(C.llama_sampler_init_penalties(C.int32_t(p.RepeatLastN), C.float(p.RepeatPenalty), C.float(p.FreqPenalty), C.float(p.PresencePenalty)))
	}
	add(C.sdtp_sampler_init_guard())
	switch {
	case p.Temperature <= 0:
		add(C.llama_sampler_init_greedy())
	case p.Mirostat == 1:
		add(C.llama_sampler_init_temp(C.float(p.Temperature)))
		add(C.llama_sampler_init_mirostat(C.int32_t(m.NVocab()), C.uint32_t(p.Seed), C.float(p.MirostatTau), C.float(p.MirostatEta), 100))
	case p.Mirostat == 2:
		add(C.llama_sampler_init_temp(C.float(p.Temperature)))
		add(C.llama_sampler_init_mirostat_v2(C.uint32_t(p.Seed), C.float(p.MirostatTau), C.float(p.MirostatEta)))
	default:
		if p.TopK > 0 {
			add(C.llama_sampler_init_top_k(C.int32_t(p.TopK)))
		}
		// As in llama.cpp, 1 turns typical-p and top-p off and 0 keeps
		// only the most likely token.
		if p.TypicalP < 1 {
			add(C.llama_sampler_init_typical(C.float(p.TypicalP), 1))
		}
		if p.TopP < 1 {
			add(C.llama_sampler_init_top_p(C.float(p.TopP), 1))
		}
		if p.MinP > 0 {
			add(C.llama_sampler_init_min_p(C.float(p.MinP), 1))
		}
		add(C.llama_sampler_init_temp(C.float(p.Temperature)))
		add(C.llama_sampler_init_dist(C.uint32_t(p.Seed)))
	}
	return s, nil
}

// Free releases the chain and its samplers.
func (s *Sampler) Free() {
	if s.ptr != nil {
		C.llama_sampler_free(s.ptr)
		s.ptr = nil
	}
}

// Sample picks a token from output row idx of c's last decode (-1 = last
// row) and accepts it into the chain's state.
func (s *Sampler) Sample(c *Context, idx int) (int32, error) {
	if err := c.checkRow(idx); err != nil {
		return -1, fmt.Errorf("sampling: %w", err)
	}
	eb := newErrBuf()
	defer eb.free()
	tok := C.sdtp_sample(s.ptr, c.ptr, C.int(idx), eb.p, errBufSize)
	if tok < 0 {
		return -1, eb.err("sampling failed")
	}
	return int32(tok), nil
}

// SampleLogits picks a token from logits computed by the staged engine and
// accepts it into the chain's state.
func (s *Sampler) SampleLogits(logits []float32) (int32, error) {
	if len(logits) == 0 {
		return -1, fmt.Errorf("sampling: no logits")
	}
	eb := newErrBuf()
	defer eb.free()
	tok := C.sdtp_sample_logits(s.ptr, (*C.float)(unsafe.Pointer(&logits[0])), C.int(len(logits)), eb.p, errBufSize)
	if tok < 0 {
		return -1, eb.err("sampling failed")
	}
	return int32(tok), nil
}

// AcceptPrompt records prompt tokens in the penalty history; a grammar
// only ever sees generated tokens.
func (s *Sampler) AcceptPrompt(tokens []int32) {
	if len(tokens) > 0 {
		C.sdtp_accept_history(s.ptr, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.int(len(tokens)))
	}
}
