package bridge

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/cgo"
	"unicode/utf8"
	"unsafe"
)

// ErrNotGGUF is returned when a model path is not a GGUF file.
var ErrNotGGUF = errors.New("not a GGUF file")

// ErrModelLoad is returned when llama.cpp refuses a GGUF file: truncated,
// corrupt, or an architecture this llama.cpp does not know.
var ErrModelLoad = errors.New("llama.cpp could not load the model")

// ModelParams are the load-time settings of a model.
type ModelParams struct {
	GPULayers   int       // layers to offload to an accelerator; -1 = all
	MainGPU     int       // device used when the model is not split
	TensorSplit []float32 // per-device proportions, empty = llama.cpp's default
	UseMMap     bool
	UseMlock    bool
	// Progress, when set, is called with values in [0, 1] while the weights
	// load; returning false aborts the load.
	Progress func(float32) bool
}

// Model is a llama.cpp model: weights and vocabulary. Its methods are safe
// for concurrent use; contexts made from it are not.
type Model struct {
	ptr   *C.struct_llama_model
	vocab *C.struct_llama_vocab
}

// LoadModel loads a GGUF model. The file is checked before llama.cpp sees it
// so that common mistakes get a precise error.
func LoadModel(path string, p ModelParams) (*Model, error) {
	if err := checkGGUF(path); err != nil {
		return nil, err
	}
	initBackend()

	mp := C.llama_model_default_params()
	mp.n_gpu_layers = C.int32_t(p.GPULayers)
	mp.main_gpu = C.int32_t(p.MainGPU)
	mp.use_mmap = C.bool(p.UseMMap)
	mp.use_mlock = C.bool(p.UseMlock)

	if len(p.TensorSplit) > 0 {
		maxDev := int(C.llama_max_devices())
		if len(p.TensorSplit) > maxDev {
			return nil, fmt.Errorf("tensor split has %d entries, this build supports %d devices", len(p.TensorSplit), maxDev)
		}
		split := (*C.float)(C.calloc(C.size_t(maxDev), C.sizeof_float))
		defer C.free(unsafe.Pointer(split))
		copy(unsafe.Slice((*float32)(unsafe.Pointer(split)), maxDev), p.TensorSplit)
		mp.tensor_split = split
	}
	if p.Progress != nil {
		h := cgo.NewHandle(p.Progress)
		defer h.Delete()
		hp := (*cgo.Handle)(C.malloc(C.size_t(unsafe.Sizeof(h))))
		defer C.free(unsafe.Pointer(hp))
		*hp = h
		mp.progress_callback = C.llama_progress_callback(C.sdtp_progress)
		mp.progress_callback_user_data = unsafe.Pointer(hp)
	}

	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	eb := newErrBuf()
	defer eb.free()
	ptr := C.sdtp_model_load(cpath, mp, eb.p, errBufSize)
	if ptr == nil {
		return nil, fmt.Errorf("%w %s: %w", ErrModelLoad, path, eb.err("llama.cpp"))
	}
	return &Model{ptr: ptr, vocab: C.llama_model_get_vocab(ptr)}, nil
}

// checkFile reports an error unless path is an existing regular file.
func checkFile(path string) (os.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	return st, nil
}

// checkGGUF rejects paths that are missing, not regular files, or do not
// start with the GGUF magic.
func checkGGUF(path string) error {
	if _, err := checkFile(path); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("GGUF")) {
		return fmt.Errorf("model %s: %w (expected the magic \"GGUF\" at offset 0)", path, ErrNotGGUF)
	}
	return nil
}

// Free releases the model. Contexts made from it must be freed first.
func (m *Model) Free() {
	if m.ptr != nil {
		C.llama_model_free(m.ptr)
		m.ptr, m.vocab = nil, nil
	}
}

func (m *Model) NVocab() int    { return int(C.llama_vocab_n_tokens(m.vocab)) }
func (m *Model) NEmbd() int     { return int(C.llama_model_n_embd(m.ptr)) }
func (m *Model) NLayer() int    { return int(C.llama_model_n_layer(m.ptr)) }
func (m *Model) NCtxTrain() int { return int(C.llama_model_n_ctx_train(m.ptr)) }
func (m *Model) Size() uint64   { return uint64(C.llama_model_size(m.ptr)) }

// Meta returns a GGUF metadata value as text, and whether it exists.
func (m *Model) Meta(key string) (string, bool) {
	ckey := C.CString(key)
	defer C.free(unsafe.Pointer(ckey))
	n := C.llama_model_meta_val_str(m.ptr, ckey, nil, 0)
	if n < 0 {
		return "", false
	}
	buf := make([]byte, int(n)+1)
	C.llama_model_meta_val_str(m.ptr, ckey, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:n]), true
}

// Arch is the model's general.architecture (llama, gemma3, qwen2, ...).
func (m *Model) Arch() string {
	a, _ := m.Meta("general.architecture")
	return a
}

// Desc is llama.cpp's one-line description, e.g. "gemma3 270M Q4_K - Medium".
func (m *Model) Desc() string {
	buf := make([]byte, 256)
	n := C.llama_model_desc(m.ptr, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:max(0, min(int(n), len(buf)-1))])
}

// BOS is the beginning-of-sequence token (-1 if none).
func (m *Model) BOS() int32 { return int32(C.llama_vocab_bos(m.vocab)) }

// IsEOG reports whether tok ends generation (EOS, EOT, ...).
func (m *Model) IsEOG(tok int32) bool { return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(tok))) }

// EOGTokens lists every end-of-generation token of the vocabulary.
func (m *Model) EOGTokens() []int32 {
	var out []int32
	for t := range int32(m.NVocab()) {
		if m.IsEOG(t) {
			out = append(out, t)
		}
	}
	return out
}

// Tokenize converts text to tokens. addSpecial adds BOS/EOS where the model
// asks for them; parseSpecial turns special-token text into those tokens.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if !utf8.ValidString(text) {
		return nil, errors.New("tokenize: text is not valid UTF-8")
	}
	if len(text) > 1<<30 {
		return nil, fmt.Errorf("tokenize: text of %d bytes is too long", len(text))
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	// A token never covers less than one byte, plus BOS/EOS.
	capacity := len(text) + 2
	toks := make([]int32, capacity)
	n := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)),
		(*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(capacity), C.bool(addSpecial), C.bool(parseSpecial))
	if n < 0 && n != C.INT32_MIN { // too small: retry with the size llama.cpp asked for
		capacity = int(-n)
		toks = make([]int32, capacity)
		n = C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(capacity), C.bool(addSpecial), C.bool(parseSpecial))
	}
	if n < 0 {
		return nil, fmt.Errorf("tokenize: llama.cpp failed (%d)", n)
	}
	return toks[:n], nil
}

// TokenizePrompt tokenizes a prompt as llama.cpp's own tools do:
// special-token text ("<|im_start|>", "<bos>", as chat templates write it)
// becomes those tokens, and BOS is added where the model asks for it
// unless the text already starts with one (no doubled BOS).
func (m *Model) TokenizePrompt(text string) ([]int32, error) {
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		return nil, err
	}
	if bos := m.BOS(); bool(C.llama_vocab_get_add_bos(m.vocab)) && len(toks) >= 2 && toks[0] == bos && toks[1] == bos {
		toks = toks[1:]
	}
	return toks, nil
}

// TokenPiece returns the raw bytes of one token; a piece may be part of a
// multi-byte UTF-8 character. Special tokens render as empty, and an id
// outside the vocabulary has no piece: nil (llama.cpp would throw).
func (m *Model) TokenPiece(tok int32) []byte {
	if tok < 0 || int(tok) >= m.NVocab() {
		return nil
	}
	buf := make([]byte, 64)
	for {
		n := C.llama_token_to_piece(m.vocab, C.llama_token(tok), (*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, false)
		if n >= 0 {
			return buf[:n]
		}
		buf = make([]byte, -n)
	}
}

// Detokenize converts tokens back to text, dropping BOS/EOS.
func (m *Model) Detokenize(tokens []int32) string {
	if len(tokens) == 0 {
		return ""
	}
	buf := make([]byte, 8*len(tokens)+16)
	for {
		n := C.llama_detokenize(m.vocab, (*C.llama_token)(unsafe.Pointer(&tokens[0])), C.int32_t(len(tokens)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), true, false)
		if n >= 0 {
			return string(buf[:n])
		}
		buf = make([]byte, -n)
	}
}

// ValidToken reports whether tok is inside the vocabulary.
func (m *Model) ValidToken(tok int32) bool { return tok >= 0 && int(tok) < m.NVocab() }

// Lora is a LoRA adapter loaded against a model.
type Lora struct{ ptr *C.struct_llama_adapter_lora }

// LoadLora loads a GGUF LoRA adapter for this model.
func (m *Model) LoadLora(path string) (*Lora, error) {
	if err := checkGGUF(path); err != nil {
		return nil, fmt.Errorf("lora adapter: %w", err)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	ptr := C.llama_adapter_lora_init(m.ptr, cpath)
	if ptr == nil {
		return nil, cError("", "llama.cpp could not load LoRA adapter %s", path)
	}
	return &Lora{ptr: ptr}, nil
}

// Free releases the adapter; contexts using it must be freed first.
func (l *Lora) Free() {
	if l.ptr != nil {
		C.llama_adapter_lora_free(l.ptr)
		l.ptr = nil
	}
}
