package bridge

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"
)

// ErrContextFull is returned when tokens do not fit in the context window.
var ErrContextFull = errors.New("context window is full")

// ContextParams are the per-context settings.
type ContextParams struct {
	NCtx          int // context window in tokens; 0 = the model's training context
	NBatch        int // tokens per llama_decode call
	NUBatch       int // tokens per compute graph; 0 = NBatch
	Threads       int // 0 or more than the cores = all cores
	Embeddings    bool
	RopeFreqBase  float32 // 0 = from the model
	RopeFreqScale float32 // 0 = from the model
}

// Context is one KV cache and its compute buffers over a Model. It is not
// safe for concurrent use: callers serialise access.
type Context struct {
	ptr      *C.struct_llama_context
	model    *Model
	nBatch   int
	nOutputs int // rows with logits from the last Decode
	abort    abortFlag
}

// NewContext creates a context. The sliding-window caches are kept at full
// size so that a prompt prefix can be reused and tokens rolled back.
func (m *Model) NewContext(p ContextParams) (*Context, error) {
	if p.NCtx < 0 || p.NBatch < 0 || p.NUBatch < 0 {
		return nil, fmt.Errorf("context: negative size (ctx %d, batch %d, ubatch %d)", p.NCtx, p.NBatch, p.NUBatch)
	}
	cp := C.llama_context_default_params()
	cp.n_ctx = C.uint32_t(p.NCtx)
	if p.NBatch > 0 {
		cp.n_batch = C.uint32_t(p.NBatch)
	}
	if p.NUBatch > 0 {
		cp.n_ubatch = C.uint32_t(p.NUBatch)
	} else if p.NBatch > 0 {
		cp.n_ubatch = C.uint32_t(min(p.NBatch, 512))
	}
	threads := C.int32_t(resolveThreads(p.Threads))
	cp.n_threads, cp.n_threads_batch = threads, threads
	cp.embeddings = C.bool(p.Embeddings)
	cp.rope_freq_base = C.float(p.RopeFreqBase)
	cp.rope_freq_scale = C.float(p.RopeFreqScale)
	cp.swa_full = true
	cp.no_perf = true

	eb := newErrBuf()
	defer eb.free()
	ptr := C.sdtp_context_new(m.ptr, cp, eb.p, errBufSize)
	if ptr == nil {
		return nil, eb.err("llama.cpp could not create a context of %d tokens", p.NCtx)
	}
	c := &Context{ptr: ptr, model: m, nBatch: int(C.llama_n_batch(ptr)), abort: newAbortFlag()}
	C.llama_set_abort_callback(ptr, C.ggml_abort_callback(C.sdtp_abort_poll), unsafe.Pointer(c.abort.p))
	return c, nil
}

// resolveThreads maps 0 to all cores and caps larger requests at the core
// count, or at SDTP_THREADS when set: ggml's workers spin while they wait,
// so oversubscribed threads (go-llama.cpp's default of 4 on a 2-core
// machine, or two processes sharing the cores) make decoding many times
// slower, never faster.
func resolveThreads(n int) int {
	limit := MaxThreads()
	if n <= 0 || n > limit {
		return limit
	}
	return n
}

// MaxThreads is the most compute threads a context or engine uses: the
// core count, lowered by the environment variable SDTP_THREADS.
func MaxThreads() int {
	limit := runtime.NumCPU()
	if v, err := strconv.Atoi(os.Getenv("SDTP_THREADS")); err == nil && v > 0 && v < limit {
		limit = v
	}
	return limit
}

// Free releases the context.
func (c *Context) Free() {
	if c.ptr != nil {
		C.sdtp_context_free(c.ptr)
		c.abort.free()
		c.ptr = nil
	}
}

// AbortWhen makes Decode stop with ErrAborted soon after ctx is done: the
// CPU backend polls between graph operations, so a running batch stops
// within one operation. Call release once the work for ctx is over.
func (c *Context) AbortWhen(ctx context.Context) (release func()) { return c.abort.when(ctx) }

func (c *Context) Model() *Model { return c.model }
func (c *Context) NCtx() int     { return int(C.llama_n_ctx(c.ptr)) }
func (c *Context) NBatch() int   { return c.nBatch }

// SetThreads sets the threads for decoding (0 = all cores).
func (c *Context) SetThreads(n int) {
	t := C.int32_t(resolveThreads(n))
	C.llama_set_n_threads(c.ptr, t, t)
}

// Outputs selects which rows of a Decode produce logits/embeddings.
type Outputs int

const (
	OutputNone Outputs = iota
	OutputLast         // the last token only
	OutputAll          // every token (the batch must fit in one NBatch)
)

// Decode appends tokens at positions pos0, pos0+1, ... to sequence 0,
// in chunks of NBatch. Logits of the last chunk are then readable.
func (c *Context) Decode(tokens []int32, pos0 int, out Outputs) error {
	if len(tokens) == 0 {
		return errors.New("decode: no tokens")
	}
	if pos0 < 0 {
		return fmt.Errorf("decode: negative position %d", pos0)
	}
	if pos0+len(tokens) > c.NCtx() {
		return fmt.Errorf("%w: %d tokens at position %d exceed the %d-token context", ErrContextFull, len(tokens), pos0, c.NCtx())
	}
	if out == OutputAll && len(tokens) > c.nBatch {
		return fmt.Errorf("decode: %d tokens with all outputs exceed the batch size %d", len(tokens), c.nBatch)
	}
	for _, t := range tokens {
		if !c.model.ValidToken(t) {
			return fmt.Errorf("decode: token %d outside the vocabulary of %d", t, c.model.NVocab())
		}
	}
	eb := newErrBuf()
	defer eb.free()
	c.nOutputs = 0
	for start := 0; start < len(tokens); start += c.nBatch {
		end := min(start+c.nBatch, len(tokens))
		last := end == len(tokens)
		ret := C.sdtp_decode(c.ptr, (*C.llama_token)(unsafe.Pointer(&tokens[start])), C.int(end-start), C.int(pos0+start),
			C.bool(last && out == OutputLast), C.bool(last && out == OutputAll), eb.p, errBufSize)
		switch {
		case ret == 0:
		case ret == 1:
			return fmt.Errorf("%w: no KV cache slot for %d tokens", ErrContextFull, end-start)
		case ret == 2:
			// llama_decode logged the abort as an error; drop that line so
			// it is not attached to a later, unrelated failure.
			C.sdtp_log_take_error(nil, 0)
			return fmt.Errorf("decode: %w", ErrAborted)
		default:
			return eb.err("decode failed (%d)", int(ret))
		}
	}
	c.nOutputs = map[Outputs]int{OutputNone: 0, OutputLast: 1, OutputAll: len(tokens)}[out]
	return nil
}

// checkRow validates an output row of the last Decode (-1 = last row):
// llama.cpp aborts the process on a bad index, so it must never see one.
func (c *Context) checkRow(i int) error {
	if c.nOutputs == 0 || i < -1 || i >= c.nOutputs {
		return fmt.Errorf("no output row %d: the last decode produced %d", i, c.nOutputs)
	}
	return nil
}

// Logits returns a copy of the logits of output row i (-1 = last row).
func (c *Context) Logits(i int) ([]float32, error) {
	if err := c.checkRow(i); err != nil {
		return nil, err
	}
	p := C.llama_get_logits_ith(c.ptr, C.int32_t(i))
	if p == nil {
		return nil, cError("", "no logits for output row %d", i)
	}
	n := c.model.NVocab()
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), n)...), nil
}

// Embedding returns the pooled embedding of sequence 0 when the model pools,
// else the embedding of the last output row.
func (c *Context) Embedding() ([]float32, error) {
	if err := c.checkRow(-1); err != nil {
		return nil, err
	}
	var p *C.float
	if C.llama_pooling_type(c.ptr) != C.LLAMA_POOLING_TYPE_NONE {
		p = C.llama_get_embeddings_seq(c.ptr, 0)
	} else {
		p = C.llama_get_embeddings_ith(c.ptr, -1)
	}
	if p == nil {
		return nil, cError("", "no embeddings (was the context created with embeddings on?)")
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), c.model.NEmbd())...), nil
}

// Clear empties the KV cache.
func (c *Context) Clear() {
	C.llama_memory_clear(C.llama_get_memory(c.ptr), true)
	c.nOutputs = 0
}

// Truncate drops every cached position >= pos. It reports false when the
// cache cannot drop a partial range (then the caller must Clear).
func (c *Context) Truncate(pos int) bool {
	return bool(C.llama_memory_seq_rm(C.llama_get_memory(c.ptr), 0, C.llama_pos(pos), -1))
}

// Remove drops the cached positions [from, to) and leaves the others as
// they are: later tokens attend to the rest at their original positions.
func (c *Context) Remove(from, to int) bool {
	return bool(C.llama_memory_seq_rm(C.llama_get_memory(c.ptr), 0, C.llama_pos(from), C.llama_pos(to)))
}

// CanShift reports whether positions can be shifted (context shifting).
func (c *Context) CanShift() bool { return bool(C.llama_memory_can_shift(C.llama_get_memory(c.ptr))) }

// Discard removes positions [from, from+n) and shifts the later positions,
// up to end, down by n.
func (c *Context) Discard(from, n, end int) bool {
	mem := C.llama_get_memory(c.ptr)
	if !C.llama_memory_seq_rm(mem, 0, C.llama_pos(from), C.llama_pos(from+n)) {
		return false
	}
	C.llama_memory_seq_add(mem, 0, C.llama_pos(from+n), C.llama_pos(end), C.llama_pos(-n))
	return true
}

// SetLora applies an adapter with the given scale (0 removes it).
func (c *Context) SetLora(l *Lora, scale float32) error {
	if scale == 0 {
		C.llama_rm_adapter_lora(c.ptr, l.ptr)
		return nil
	}
	if C.llama_set_adapter_lora(c.ptr, l.ptr, C.float(scale)) != 0 {
		return cError("", "could not apply LoRA adapter")
	}
	return nil
}

// SaveState writes the KV cache and the tokens it holds to path.
func (c *Context) SaveState(path string, tokens []int32) error {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	eb := newErrBuf()
	defer eb.free()
	var tp *C.llama_token
	if len(tokens) > 0 {
		tp = (*C.llama_token)(unsafe.Pointer(&tokens[0]))
	}
	if !C.sdtp_state_save(c.ptr, cpath, tp, C.size_t(len(tokens)), eb.p, errBufSize) {
		return eb.err("could not save state to %s", path)
	}
	return nil
}

// LoadState restores a state written by SaveState and returns its tokens.
func (c *Context) LoadState(path string) ([]int32, error) {
	if _, err := checkFile(path); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	eb := newErrBuf()
	defer eb.free()
	tokens := make([]int32, c.NCtx())
	var n C.size_t
	if !C.sdtp_state_load(c.ptr, cpath, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.size_t(len(tokens)), &n, eb.p, errBufSize) {
		c.Clear()
		return nil, eb.err("could not load state from %s", path)
	}
	return tokens[:n], nil
}
