package bridge

/*
#include <stdlib.h>
#include "shim.h"
#include "stage.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"
)

// StagedArch names the staged implementation for m's architecture, or
// reports false when the model can only run densely through llama_decode.
func StagedArch(m *Model) (string, bool) {
	name := C.sdtp_engine_arch(m.ptr)
	if name == nil {
		return "", false
	}
	return C.GoString(name), true
}

// Engine runs ranges of layers over chosen tokens with a KV cache per
// layer (see stage.h). It is not safe for concurrent use.
type Engine struct {
	ptr    *C.sdtp_engine
	model  *Model
	nEmbd  int
	nLayer int
	nCtx   int
	abort  abortFlag
	// headContext is the heads' Context (SetHeads).
	headContext int
	layers      []LayerShape // Shape's, read once
}

// NewEngine creates a staged engine over c's model and RoPE settings with
// room for nCtx tokens in every layer.
func (c *Context) NewEngine(nCtx, threads int) (*Engine, error) {
	if nCtx <= 0 {
		return nil, fmt.Errorf("engine: context size %d must be positive", nCtx)
	}
	eb := newErrBuf()
	defer eb.free()
	ptr := C.sdtp_engine_new(c.ptr, C.int(nCtx), C.int(resolveThreads(threads)), eb.p, errBufSize)
	if ptr == nil {
		return nil, eb.err("engine")
	}
	e := &Engine{ptr: ptr, model: c.model, nEmbd: c.model.NEmbd(), nLayer: c.model.NLayer(), nCtx: nCtx, abort: newAbortFlag()}
	C.sdtp_engine_set_abort_callback(ptr, C.ggml_abort_callback(C.sdtp_abort_poll), unsafe.Pointer(e.abort.p))
	var v [5]C.int
	for il := range e.nLayer {
		C.sdtp_engine_layer_shape(ptr, C.int(il), &v[0])
		e.layers = append(e.layers, LayerShape{int(v[0]), int(v[1]), int(v[2]), int(v[3]), int(v[4])})
	}
	return e, nil
}

// Free releases the engine and its caches.
func (e *Engine) Free() {
	if e.ptr != nil {
		C.sdtp_engine_free(e.ptr)
		e.abort.free()
		e.ptr = nil
	}
}

// AbortWhen makes Run stop with ErrAborted soon after ctx is done, within
// one graph operation. Call release once the work for ctx is over.
func (e *Engine) AbortWhen(ctx context.Context) (release func()) { return e.abort.when(ctx) }

// TokenPiece is Model.TokenPiece of the engine's model.
func (e *Engine) TokenPiece(tok int32) []byte { return e.model.TokenPiece(tok) }

func (e *Engine) NLayer() int { return e.nLayer }
func (e *Engine) NEmbd() int  { return e.nEmbd }
func (e *Engine) NVocab() int { return e.model.NVocab() }

// NCtx is the cells every layer's cache has room for.
func (e *Engine) NCtx() int { return e.nCtx }

// SetThreads sets the compute threads (0 = all cores).
func (e *Engine) SetThreads(n int) { C.sdtp_engine_set_threads(e.ptr, C.int(resolveThreads(n))) }

// Reset empties every layer's cache and groups the layers into segments
// that start at the given layers (the first must be 0): runs cover whole
// segments, so a segment's layers cache one set of tokens until Evict
// drops cells per layer.
func (e *Engine) Reset(segmentStarts []int) error {
	if len(segmentStarts) == 0 {
		return errors.New("engine: no segments")
	}
	starts := make([]C.int, len(segmentStarts))
	for i, s := range segmentStarts {
		starts[i] = C.int(s)
	}
	eb := newErrBuf()
	defer eb.free()
	if !C.sdtp_engine_reset(e.ptr, &starts[0], C.int(len(starts)), eb.p, errBufSize) {
		return eb.err("engine reset")
	}
	return nil
}

// RunInput is one call of Run: the tokens (first segment) or hidden states
// (later ones, [n][n_embd] row-major) of n tokens at original positions.
type RunInput struct {
	First, Last int // layer range [First, Last)
	Tokens      []int32
	Hidden      []float32
	Positions   []int32
	WantHidden  bool
	WantLogits  bool // logits of the last token; needs Last == NLayer
	AllLogits   bool // with WantLogits: logits of every token, [n][n_vocab]
	AttnWindow  int  // > 0: attention scores from the last AttnWindow tokens
	ScoreHead   bool // in-graph predictor head scores for layer Last (SetHeads)
	// HeadContext is the heads' context input, [n][Head.Context], when
	// they have one.
	HeadContext []float32
	// LayerAttnWindow > 0 asks for RunOutput.LayerAttn: at every layer of
	// the run (or those of LayerAttnLayers, when not nil), the attention
	// the last LayerAttnWindow tokens pay each cached token, summed over
	// those queries, per head. LayerAttnSampled > 0 adds that many
	// queries before the window, every LayerAttnStride-th token from the
	// one just before it back, each counted LayerAttnStride times: a few
	// queries estimate the sum over a long stretch of text at a fraction
	// of its cost. LayerAttnSWA says how sliding-window layers count.
	LayerAttnWindow  int
	LayerAttnSampled int
	LayerAttnStride  int
	LayerAttnSWA     SWAAttention
	LayerAttnLayers  []int
}

// SWAAttention is how per-head layer attention (RunInput.LayerAttnWindow)
// treats sliding-window layers (Gemma 3: five layers in six attend to the
// last 512 tokens only).
type SWAAttention int

const (
	// SWAFullMask scores sliding-window layers with the full causal mask:
	// every earlier token is ranked by its q·k, though the layer's real
	// attention cannot reach beyond the window.
	SWAFullMask SWAAttention = iota
	// SWAOwnMask uses the layer's own mask: tokens beyond the window get 0.
	SWAOwnMask
	// SWASkip leaves sliding-window layers out.
	SWASkip
)

// String names the setting as predictor sets spell it.
func (s SWAAttention) String() string {
	switch s {
	case SWAFullMask:
		return "full-mask"
	case SWAOwnMask:
		return "own-mask"
	case SWASkip:
		return "skip"
	}
	return fmt.Sprintf("SWAAttention(%d)", int(s))
}

// LayerAttention is one layer's per-head window attention over its cached
// tokens (in cache order, see Positions): Scores is [NHead][cells], each
// value the attention summed over the window's queries.
type LayerAttention struct {
	Layer, NHead int
	Scores       []float32
}

// RunOutput holds what Run was asked for.
type RunOutput struct {
	Hidden []float32 // [n][n_embd]
	Logits []float32 // [n_vocab], or [n][n_vocab] with AllLogits
	Attn   []float32 // [cells of layer Last-1]
	Head   []float32 // [n] keep − drop of the head for layer Last
	// LayerAttn has one entry per layer of [First, Last) (sliding-window
	// layers left out under SWASkip), with LayerAttnWindow.
	LayerAttn []LayerAttention
}

// Head is one in-graph predictor: Linear(d+Context, H) → GELU →
// Linear(H, 2) on the residual stream entering Layer, followed by Context
// per-token values that each run supplies (RunInput.HeadContext). W1 is
// [H][d+Context], W2 [2][H], row-major.
type Head struct {
	Layer      int
	H, Context int
	W1, B1     []float32
	W2, B2     []float32
}

// SetHeads loads predictor heads into the engine (replacing earlier ones).
func (e *Engine) SetHeads(heads []Head) error {
	if len(heads) == 0 {
		return errors.New("engine: no heads")
	}
	h, k := heads[0].H, heads[0].Context
	var layers []C.int
	var w1, b1, w2, b2 []float32
	for _, hd := range heads {
		if hd.H != h || hd.Context != k || k < 0 || len(hd.W1) != h*(e.nEmbd+k) || len(hd.B1) != h || len(hd.W2) != 2*h || len(hd.B2) != 2 {
			return fmt.Errorf("engine: head for layer %d: want hidden width %d and input width %d+%d", hd.Layer, h, e.nEmbd, k)
		}
		layers = append(layers, C.int(hd.Layer))
		w1, b1, w2, b2 = append(w1, hd.W1...), append(b1, hd.B1...), append(w2, hd.W2...), append(b2, hd.B2...)
	}
	eb := newErrBuf()
	defer eb.free()
	e.headContext = 0 // the engine drops its heads first
	if !C.sdtp_engine_set_heads(e.ptr, C.int(len(heads)), &layers[0], C.int(h), C.int(k),
		(*C.float)(unsafe.Pointer(&w1[0])), (*C.float)(unsafe.Pointer(&b1[0])),
		(*C.float)(unsafe.Pointer(&w2[0])), (*C.float)(unsafe.Pointer(&b2[0])), eb.p, errBufSize) {
		return eb.err("engine heads")
	}
	e.headContext = k
	return nil
}

// Run computes layers [First, Last) for the input tokens and appends their
// K/V to those layers' caches.
func (e *Engine) Run(in RunInput) (RunOutput, error) {
	var out RunOutput
	n := len(in.Positions)
	if n == 0 {
		return out, errors.New("engine: no tokens")
	}
	if in.First == 0 && len(in.Tokens) != n {
		return out, fmt.Errorf("engine: %d tokens for %d positions", len(in.Tokens), n)
	}
	if in.First > 0 && len(in.Hidden) != n*e.nEmbd {
		return out, fmt.Errorf("engine: %d hidden values for %d tokens of width %d", len(in.Hidden), n, e.nEmbd)
	}
	var tokens *C.int32_t
	var hidden, hiddenOut, logitsOut, attnOut, headOut, headCtx *C.float
	if in.First == 0 {
		tokens = (*C.int32_t)(unsafe.Pointer(&in.Tokens[0]))
	} else {
		hidden = (*C.float)(unsafe.Pointer(&in.Hidden[0]))
	}
	if in.WantHidden {
		out.Hidden = make([]float32, n*e.nEmbd)
		hiddenOut = (*C.float)(unsafe.Pointer(&out.Hidden[0]))
	}
	if in.WantLogits {
		rows := 1
		if in.AllLogits {
			rows = n
		}
		out.Logits = make([]float32, rows*e.model.NVocab())
		logitsOut = (*C.float)(unsafe.Pointer(&out.Logits[0]))
	}
	if in.AttnWindow > 0 {
		if in.Last < 1 || in.Last > e.nLayer {
			return out, fmt.Errorf("engine: layer range [%d, %d) out of bounds", in.First, in.Last)
		}
		out.Attn = make([]float32, e.Cells(in.Last-1)+n)
		attnOut = (*C.float)(unsafe.Pointer(&out.Attn[0]))
	}
	if in.ScoreHead {
		out.Head = make([]float32, n)
		headOut = (*C.float)(unsafe.Pointer(&out.Head[0]))
		if len(in.HeadContext) != n*e.headContext {
			return out, fmt.Errorf("engine: %d head context values for %d tokens; the heads read %d each", len(in.HeadContext), n, e.headContext)
		}
		if e.headContext > 0 {
			headCtx = (*C.float)(unsafe.Pointer(&in.HeadContext[0]))
		}
	}
	var layerAttn []float32
	var layerAttnOut *C.float
	var layerAttnOn []C.bool
	if in.LayerAttnWindow > 0 {
		if in.First < 0 || in.Last > e.nLayer || in.First >= in.Last {
			return out, fmt.Errorf("engine: layer range [%d, %d) out of bounds", in.First, in.Last)
		}
		if in.LayerAttnWindow > n || in.LayerAttnSampled < 0 ||
			(in.LayerAttnSampled > 0 && (in.LayerAttnStride < 1 || in.LayerAttnWindow+(in.LayerAttnSampled-1)*in.LayerAttnStride >= n)) {
			return out, fmt.Errorf("engine: a layer-attention window of %d and %d sampled queries at stride %d do not fit in %d tokens",
				in.LayerAttnWindow, in.LayerAttnSampled, in.LayerAttnStride, n)
		}
		if in.LayerAttnSWA < SWAFullMask || in.LayerAttnSWA > SWASkip {
			return out, fmt.Errorf("engine: unknown sliding-window attention setting %d", in.LayerAttnSWA)
		}
		layerAttnOn = make([]C.bool, in.Last-in.First)
		size := 0
		for il := in.First; il < in.Last; il++ {
			if (in.LayerAttnSWA == SWASkip && e.layers[il].Window > 0) || (in.LayerAttnLayers != nil && !slices.Contains(in.LayerAttnLayers, il)) {
				continue
			}
			layerAttnOn[il-in.First] = true
			nh, cells := e.layers[il].NHead, e.Cells(il)+n
			out.LayerAttn = append(out.LayerAttn, LayerAttention{Layer: il, NHead: nh, Scores: make([]float32, nh*cells)})
			size += nh * cells
		}
		if size > 0 {
			layerAttn = make([]float32, size)
			layerAttnOut = (*C.float)(unsafe.Pointer(&layerAttn[0]))
		}
	}
	swaMask := C.sdtp_swa_attn(C.SDTP_SWA_FULL_MASK)
	if in.LayerAttnSWA == SWAOwnMask {
		swaMask = C.SDTP_SWA_OWN_MASK
	}
	var layerAttnOnPtr *C.bool
	if layerAttnOut != nil {
		layerAttnOnPtr = &layerAttnOn[0]
	}
	eb := newErrBuf()
	defer eb.free()
	ret := C.sdtp_engine_run(e.ptr, C.int(in.First), C.int(in.Last), tokens, hidden,
		(*C.int32_t)(unsafe.Pointer(&in.Positions[0])), C.int(n), hiddenOut, logitsOut, C.bool(in.AllLogits), attnOut, C.int(in.AttnWindow),
		headOut, headCtx, layerAttnOut, C.int(in.LayerAttnWindow), C.int(in.LayerAttnSampled), C.int(in.LayerAttnStride), swaMask, layerAttnOnPtr, eb.p, errBufSize)
	switch ret {
	case 0:
	case 1:
		return RunOutput{}, fmt.Errorf("engine run of layers [%d, %d): %w", in.First, in.Last, ErrAborted)
	default:
		return RunOutput{}, eb.err("engine run of layers [%d, %d)", in.First, in.Last)
	}
	for i := range out.LayerAttn {
		la := &out.LayerAttn[i]
		copy(la.Scores, layerAttn)
		layerAttn = layerAttn[len(la.Scores):]
	}
	return out, nil
}

// LayerShape describes one layer for FLOPs accounting.
type LayerShape struct {
	NHead, NHeadKV, HeadDim, NFF int
	Window                       int // sliding window; 0 = full attention
}

// Shape returns the shape of every layer, the embedding width and the
// vocabulary size.
func (e *Engine) Shape() (layers []LayerShape, nEmbd, nVocab int) {
	return slices.Clone(e.layers), e.nEmbd, e.model.NVocab()
}

// TimeHeads turns on timing of the in-graph heads where they run; HeadTime
// returns the time spent in them since the last call.
func (e *Engine) TimeHeads(on bool) { C.sdtp_engine_time_heads(e.ptr, C.bool(on)) }

// HeadTime returns and clears the time TimeHeads measured.
func (e *Engine) HeadTime() time.Duration {
	return time.Duration(C.sdtp_engine_head_us(e.ptr)) * time.Microsecond
}

// Cells is the number of tokens cached by a layer (-1 outside the model).
func (e *Engine) Cells(layer int) int { return int(C.sdtp_engine_cells(e.ptr, C.int(layer))) }

// KVBytes is the memory the caches' filled cells take.
func (e *Engine) KVBytes() int64 { return int64(C.sdtp_engine_kv_bytes(e.ptr)) }

// AttnStats selects the per-cell attention statistics runs keep for KV
// eviction policies (docs/KV.md).
type AttnStats int

const (
	AttnStatsOff        AttnStats = C.SDTP_ATTN_STATS_OFF        // none, and no cost
	AttnStatsAccumulate AttnStats = C.SDTP_ATTN_STATS_ACCUMULATE // totals over every run (H2O)
	AttnStatsReplace    AttnStats = C.SDTP_ATTN_STATS_REPLACE    // the latest run's only (SnapKV)
)

// TrackAttention makes every later Run compute, for each layer it runs,
// the attention its last window queries (0: all of them) pay each cached
// cell, summed over heads and queries, beside flash attention; AttnScores
// reads it. The setting survives Reset.
func (e *Engine) TrackAttention(mode AttnStats, window int) {
	C.sdtp_engine_track_attention(e.ptr, C.sdtp_attn_stats(mode), C.int(window))
}

// Positions are the original positions of a layer's cells, in cache order
// (increasing).
func (e *Engine) Positions(layer int) []int32 {
	out := make([]int32, max(e.Cells(layer), 0))
	if len(out) > 0 {
		C.sdtp_engine_cell_info(e.ptr, C.int(layer), (*C.int32_t)(unsafe.Pointer(&out[0])), nil)
	}
	return out
}

// AttnScores are a layer's per-cell attention statistics (TrackAttention),
// parallel to Positions; 0 for cells no tracked query has seen.
func (e *Engine) AttnScores(layer int) []float32 {
	out := make([]float32, max(e.Cells(layer), 0))
	if len(out) > 0 {
		C.sdtp_engine_cell_info(e.ptr, C.int(layer), nil, (*C.float)(unsafe.Pointer(&out[0])))
	}
	return out
}

// Evict drops every cell of a layer except those at the cache indices keep
// (increasing): the survivors' K/V rows move down, so Cells and KVBytes
// shrink. Positions stay original; later runs attend to the survivors only.
func (e *Engine) Evict(layer int, keep []int) error {
	if layer < 0 || layer >= e.nLayer {
		return fmt.Errorf("engine: evict: layer %d out of range", layer)
	}
	idx := make([]C.int, len(keep)+1) // +1: a valid pointer when keep is empty
	for i, k := range keep {
		idx[i] = C.int(k)
	}
	eb := newErrBuf()
	defer eb.free()
	if !C.sdtp_engine_evict(e.ptr, C.int(layer), &idx[0], C.int(len(keep)), eb.p, errBufSize) {
		return eb.err("engine evict in layer %d", layer)
	}
	return nil
}

// Remove drops, in every layer, the cells at positions [from, to) (to < 0:
// every position >= from) and returns how many cells went: the engine's
// llama_memory_seq_rm. A prompt that diverges from the cached one at
// position p keeps what it shares with Remove(p, -1).
func (e *Engine) Remove(from, to int) int {
	return int(C.sdtp_engine_remove(e.ptr, C.int(from), C.int(to)))
}

// Shift moves every layer's cells at positions >= from by delta and
// re-rotates their cached keys to match (llama.cpp's K-shift,
// llama_memory_seq_add). The cells must stay after the earlier ones, so a
// context shift first Removes [from+delta, from). A failed shift (an error,
// or the abort flag stopping the graph) leaves keys half-rotated: the
// caller must Reset.
func (e *Engine) Shift(from, delta int) error {
	eb := newErrBuf()
	defer eb.free()
	if !C.sdtp_engine_shift(e.ptr, C.int(from), C.int(delta), eb.p, errBufSize) {
		return eb.err("engine shift")
	}
	return nil
}

// LayerState copies a layer's cells: their positions and their cached K
// and V rows (RowBytes each), for saving the caches to a file.
func (e *Engine) LayerState(layer int) (pos []int32, k, v []byte) {
	n := max(e.Cells(layer), 0)
	pos = make([]int32, n)
	kb, vb := e.RowBytes(layer)
	k, v = make([]byte, n*kb), make([]byte, n*vb)
	if n > 0 {
		C.sdtp_engine_layer_get(e.ptr, C.int(layer), (*C.int32_t)(unsafe.Pointer(&pos[0])), unsafe.Pointer(&k[0]), unsafe.Pointer(&v[0]))
	}
	return pos, k, v
}

// RowBytes is the size of one cached K row and V row of a layer.
func (e *Engine) RowBytes(layer int) (k, v int) {
	return int(C.sdtp_engine_row_bytes(e.ptr, C.int(layer), false)), int(C.sdtp_engine_row_bytes(e.ptr, C.int(layer), true))
}

// SetLayerState replaces a layer's cells by what LayerState returned
// (after Reset with the same segments).
func (e *Engine) SetLayerState(layer int, pos []int32, k, v []byte) error {
	if layer < 0 || layer >= e.nLayer {
		return fmt.Errorf("engine: layer %d out of range", layer)
	}
	kb, vb := e.RowBytes(layer)
	if len(k) != len(pos)*kb || len(v) != len(pos)*vb {
		return fmt.Errorf("engine: layer %d: %d cells need %d K and %d V bytes, got %d and %d", layer, len(pos), len(pos)*kb, len(pos)*vb, len(k), len(v))
	}
	var pp *C.int32_t
	var kp, vp unsafe.Pointer
	if len(pos) > 0 {
		pp, kp, vp = (*C.int32_t)(unsafe.Pointer(&pos[0])), unsafe.Pointer(&k[0]), unsafe.Pointer(&v[0])
	}
	eb := newErrBuf()
	defer eb.free()
	if !C.sdtp_engine_layer_set(e.ptr, C.int(layer), pp, C.int(len(pos)), kp, vp, eb.p, errBufSize) {
		return eb.err("engine layer %d state", layer)
	}
	return nil
}
