// Package llama is a drop-in replacement for github.com/go-skynet/go-llama.cpp
// on a current llama.cpp: the same identifiers and signatures, so a program
// changes only its import path.
//
// Concurrency: a *LLama holds one model and one context (KV cache). Its
// methods may be called from several goroutines; calls that use the context
// (Predict, Eval, Embeddings, SaveState, ...) run one at a time. For parallel
// generation, load one *LLama per worker.
//
// Token callbacks: a callback runs while its call holds the context, so
// from inside it only the calls that read the vocabulary alone may be made
// on the same *LLama (TokenizeString, Detokenize, TokenToPiece,
// ApplyChatTemplate) as well as SetTokenCallback and Free (which then takes effect when the call
// returns). Any other call there returns ErrReentrant instead of waiting
// for itself. A callback must not wait for another goroutine that calls
// the same *LLama: that goroutine waits for the callback's call to end.
package llama

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-sdtp/sdtp/bridge"
)

var nextID atomic.Uint64

// liveNatives counts models whose native objects are not released yet; the
// leak tests wait on it for the cleanup of dropped models.
var liveNatives atomic.Int64

type LLama struct {
	id   uint64     // creation order, for deadlock-free pair locking
	path string     // the GGUF file, where SetSDTP looks for predictors
	mu   sync.Mutex // serialises use of the context, the engine and cached
	// owner is the goroutine holding mu (0: none), so that a call from
	// inside a token callback is refused rather than waiting for itself.
	owner atomic.Int64
	// freeing guards the native objects against Free for the calls that
	// read only the vocabulary and so do not take mu (they are safe
	// beside a running decode, and may be made from a callback).
	freeing   sync.RWMutex
	freeLater bool    // Free was called from inside a callback; under mu
	*native           // fields are nil after Free
	cached    []int32 // tokens whose K/V the context holds; index = position
	opts      ModelOptions
	callback  struct {
		sync.Mutex
		fn func(string) bool // set by SetTokenCallback
	}
}

// native holds the llama.cpp objects of a *LLama, whose memory Go's
// garbage collector does not see. Free releases them; New also attaches a
// cleanup that releases them once the *LLama is unreachable, as a safety
// net for a forgotten Free (it runs only after some garbage collection).
type native struct {
	model  *bridge.Model
	ctx    *bridge.Context
	lora   *bridge.Lora
	staged *staged // nil: llama.cpp's own llama_decode path
}

// free releases everything in dependency order and returns the memory to
// the operating system; a second call does nothing.
func (n *native) free() {
	if n.model == nil {
		return
	}
	if n.staged != nil {
		n.staged.free()
		n.staged = nil
	}
	if n.ctx != nil {
		n.ctx.Free()
		n.ctx = nil
	}
	if n.lora != nil {
		n.lora.Free()
		n.lora = nil
	}
	n.model.Free()
	n.model = nil
	bridge.ReleaseFreedMemory()
	liveNatives.Add(-1)
}

// ReleaseFreedMemory hands the memory that llama.cpp, ggml and the staged
// engine have freed back to the operating system (glibc's malloc_trim; a
// no-op elsewhere). glibc keeps freed memory in the arena of the thread
// that allocated it, and Go runs cgo calls on many threads, so a
// long-running program that generates from several goroutines (a server)
// sees RSS climb above what is in use unless it calls this now and then,
// e.g. after each request. It takes milliseconds; any goroutine may call it.
func ReleaseFreedMemory() { bridge.ReleaseFreedMemory() }

// New loads a GGUF model and creates its context.
func New(model string, opts ...ModelOption) (*LLama, error) {
	mo := NewModelOptions(opts...)
	mp, cp, err := loadParams(mo)
	if err != nil {
		return nil, err
	}
	if mo.NUMA {
		bridge.InitNUMA()
	}
	m, err := bridge.LoadModel(model, mp)
	if err != nil {
		return nil, err
	}
	l := &LLama{id: nextID.Add(1), path: model, native: &native{model: m}, opts: mo}
	liveNatives.Add(1)
	runtime.AddCleanup(l, (*native).free, l.native)
	if l.ctx, err = m.NewContext(cp); err != nil {
		l.Free()
		return nil, err
	}
	if l.staged, err = newStaged(model, m, l.ctx, mo.SDTP, mo.LoraAdapter != ""); err != nil {
		l.Free()
		return nil, err
	}
	if mo.LoraAdapter != "" {
		if l.lora, err = m.LoadLora(mo.LoraAdapter); err != nil {
			l.Free()
			return nil, err
		}
		if err := l.ctx.SetLora(l.lora, 1); err != nil {
			l.Free()
			return nil, err
		}
	}
	return l, nil
}

// loadParams validates ModelOptions and maps them onto the bridge.
func loadParams(mo ModelOptions) (bridge.ModelParams, bridge.ContextParams, error) {
	var mp bridge.ModelParams
	var cp bridge.ContextParams
	if mo.ContextSize < 0 {
		return mp, cp, fmt.Errorf("llama: context size %d is negative", mo.ContextSize)
	}
	if mo.NBatch < 0 {
		return mp, cp, fmt.Errorf("llama: batch size %d is negative", mo.NBatch)
	}
	if mo.NBatch == 0 {
		return mp, cp, errors.New("llama: batch size 0: want at least 1 token per llama_decode call")
	}
	mp = bridge.ModelParams{GPULayers: mo.NGPULayers, UseMMap: mo.MMap, UseMlock: mo.MLock, Progress: mo.Progress}
	if mo.MainGPU != "" {
		gpu, err := strconv.Atoi(strings.TrimSpace(mo.MainGPU))
		if err != nil || gpu < 0 {
			return mp, cp, fmt.Errorf("llama: main GPU %q is not a device index", mo.MainGPU)
		}
		mp.MainGPU = gpu
	}
	if mo.TensorSplit != "" {
		for _, f := range strings.Split(mo.TensorSplit, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 32)
			if err != nil || v < 0 {
				return mp, cp, fmt.Errorf("llama: tensor split %q: want comma-separated non-negative numbers", mo.TensorSplit)
			}
			mp.TensorSplit = append(mp.TensorSplit, float32(v))
		}
	}
	cp = bridge.ContextParams{NCtx: mo.ContextSize, NBatch: mo.NBatch, Embeddings: mo.Embeddings}
	if mo.FreqRopeBase != DefaultModelOptions.FreqRopeBase || mo.FreqRopeScale != DefaultModelOptions.FreqRopeScale {
		cp.RopeFreqBase, cp.RopeFreqScale = mo.FreqRopeBase, mo.FreqRopeScale
	}
	return mp, cp, nil
}

// Free releases the context, the adapter and the model. It may be called
// more than once; other methods then return ErrFreed. Called from inside a
// token callback, it takes effect when the generating call returns.
func (l *LLama) Free() {
	if !l.mu.TryLock() {
		if l.owner.Load() == goroutineID() {
			l.freeLater = true
			return
		}
		l.mu.Lock()
	}
	l.freeNative()
	l.mu.Unlock()
}

// freeNative releases the native objects; the caller holds mu.
func (l *LLama) freeNative() {
	l.freeing.Lock()
	defer l.freeing.Unlock()
	l.native.free()
	l.cached = nil
}

// lock takes the context lock; it fails once the model is freed, and with
// ErrReentrant when this goroutine already holds it (a call from inside a
// token callback).
func (l *LLama) lock() error {
	if !l.mu.TryLock() {
		if l.owner.Load() == goroutineID() {
			return ErrReentrant
		}
		l.mu.Lock()
	}
	if l.model == nil {
		l.mu.Unlock()
		return ErrFreed
	}
	l.owner.Store(goroutineID())
	return nil
}

// unlock releases the context lock, doing a Free asked for meanwhile.
func (l *LLama) unlock() {
	l.owner.Store(0)
	if l.freeLater {
		l.freeLater = false
		l.freeNative()
	}
	l.mu.Unlock()
}

// goroutineID is the runtime's number of the calling goroutine, read from
// the first line of its stack trace ("goroutine 18 [running]:"). Go offers
// no other way to tell a callback's own goroutine from another one.
func goroutineID() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[len("goroutine "):]
	id, _ := strconv.ParseInt(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	return id
}

// readModel takes the lock of the vocabulary-only calls; it fails once the
// model is freed.
func (l *LLama) readModel() error {
	l.freeing.RLock()
	if l.model == nil {
		l.freeing.RUnlock()
		return ErrFreed
	}
	return nil
}

// SaveState writes the KV cache and its tokens to dst.
func (l *LLama) SaveState(dst string) error {
	if err := l.lock(); err != nil {
		return err
	}
	defer l.unlock()
	if l.staged != nil {
		return l.staged.unsupported("SaveState (staged modes save their per-layer caches with SetPathPromptCache)")
	}
	return l.ctx.SaveState(dst, l.cached)
}

// LoadState restores a file written by SaveState; the next Predict or Eval
// reuses it for a prompt that starts with the saved tokens.
func (l *LLama) LoadState(state string) error {
	if err := l.lock(); err != nil {
		return err
	}
	defer l.unlock()
	if l.staged != nil {
		return l.staged.unsupported("LoadState (staged modes restore their per-layer caches with SetPathPromptCache)")
	}
	toks, err := l.ctx.LoadState(state)
	if err != nil {
		l.cached = nil
		return err
	}
	l.cached = toks
	return nil
}

// TokenizeString returns the number of tokens and the tokens of text,
// starting with BOS where the model adds one. Prompts are tokenized this
// way everywhere: special-token text such as "<|im_start|>" becomes that
// token (as in llama.cpp's tools), and a text that starts with the BOS
// text gets no second BOS. It reads only the vocabulary: it runs beside a
// generation and may be called from a token callback.
func (l *LLama) TokenizeString(text string, opts ...PredictOption) (int32, []int32, error) {
	if err := l.readModel(); err != nil {
		return 0, nil, err
	}
	defer l.freeing.RUnlock()
	toks, err := l.model.TokenizePrompt(text)
	if err != nil {
		return 0, nil, err
	}
	return int32(len(toks)), toks, nil
}

// Detokenize returns the text of tokens (llama_detokenize), leaving out
// BOS/EOS and other special tokens. Like TokenizeString it may be called
// from a token callback. A token outside the vocabulary is an error.
func (l *LLama) Detokenize(tokens []int32) (string, error) {
	if err := l.readModel(); err != nil {
		return "", err
	}
	defer l.freeing.RUnlock()
	if err := l.checkTokens(tokens); err != nil {
		return "", err
	}
	return l.model.Detokenize(tokens), nil
}

// TokenToPiece returns the bytes of one token as text
// (llama_token_to_piece); a piece may be part of a multi-byte UTF-8
// character, and special tokens are empty. It may be called from a token
// callback.
func (l *LLama) TokenToPiece(token int32) (string, error) {
	if err := l.readModel(); err != nil {
		return "", err
	}
	defer l.freeing.RUnlock()
	if err := l.checkTokens([]int32{token}); err != nil {
		return "", err
	}
	return string(l.model.TokenPiece(token)), nil
}

// checkTokens refuses token ids outside the vocabulary (llama.cpp would
// throw on them).
func (l *LLama) checkTokens(tokens []int32) error {
	for i, t := range tokens {
		if !l.model.ValidToken(t) {
			return fmt.Errorf("llama: token %d at index %d is outside the vocabulary of %d", t, i, l.model.NVocab())
		}
	}
	return nil
}

// Embeddings returns the embedding of text: the model's pooled embedding
// when it defines pooling, else the hidden state of the last token
// (length n_embd). The model must be loaded with EnableEmbeddings.
func (l *LLama) Embeddings(text string, opts ...PredictOption) ([]float32, error) {
	if err := l.lock(); err != nil {
		return nil, err
	}
	defer l.unlock()
	toks, err := l.model.TokenizePrompt(text)
	if err != nil {
		return nil, err
	}
	return l.embed(toks, opts)
}

// TokenEmbeddings is Embeddings for already tokenized input.
func (l *LLama) TokenEmbeddings(tokens []int, opts ...PredictOption) ([]float32, error) {
	if err := l.lock(); err != nil {
		return nil, err
	}
	defer l.unlock()
	toks := make([]int32, len(tokens))
	for i, t := range tokens {
		if t < 0 || t >= l.model.NVocab() {
			return nil, fmt.Errorf("llama: token %d at index %d is outside the vocabulary of %d", t, i, l.model.NVocab())
		}
		toks[i] = int32(t)
	}
	return l.embed(toks, opts)
}

func (l *LLama) embed(toks []int32, opts []PredictOption) ([]float32, error) {
	po := NewPredictOptions(opts...)
	if err := po.check(); err != nil {
		return nil, err
	}
	if !l.opts.Embeddings {
		return nil, errors.New("llama: model loaded without embeddings (use EnableEmbeddings)")
	}
	if len(toks) == 0 {
		return nil, errors.New("llama: nothing to embed")
	}
	if len(toks) > l.ctx.NCtx() {
		return nil, fmt.Errorf("%w: %d tokens, context of %d", ErrContextFull, len(toks), l.ctx.NCtx())
	}
	l.ctx.SetThreads(po.Threads)
	// Embeddings need a fresh sequence: the cached prompt is dropped.
	l.ctx.Clear()
	l.cached = nil
	if err := l.ctx.Decode(toks, 0, bridge.OutputLast); err != nil {
		l.ctx.Clear()
		return nil, err
	}
	emb, err := l.ctx.Embedding()
	l.ctx.Clear()
	return emb, err
}

// SetTokenCallback sets a callback for every piece of text Predict
// generates; returning false stops the prediction. nil removes it. It may
// be called while a prediction runs. A callback given in PredictOptions
// takes precedence for that call.
func (l *LLama) SetTokenCallback(callback func(token string) bool) {
	l.callback.Lock()
	l.callback.fn = callback
	l.callback.Unlock()
}

// tokenCallback returns the callback set by SetTokenCallback at call time.
func (l *LLama) tokenCallback(piece string) bool {
	l.callback.Lock()
	fn := l.callback.fn
	l.callback.Unlock()
	return fn == nil || fn(piece)
}
