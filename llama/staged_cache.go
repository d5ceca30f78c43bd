package llama

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// stagedCacheMagic starts a staged-mode prompt cache file; llama.cpp's
// own state files (mode llamacpp) start otherwise.
const stagedCacheMagic = "SDTP-KV1\n"

// stagedCacheHeader describes a staged-mode prompt cache file: the model
// shape and pruning segments the caches belong to, and the tokens they
// hold (index = position) with the stage that dropped each (0: kept).
// Per layer follow: uint32 cells, int32 positions, then the K and V rows.
type stagedCacheHeader struct {
	Mode     string   `json:"mode"`
	NLayer   int      `json:"n_layer"`
	NEmbd    int      `json:"n_embd"`
	NVocab   int      `json:"n_vocab"`
	Segments []int    `json:"segments"`  // first layer of each pruning segment
	RowBytes [][2]int `json:"row_bytes"` // per layer: K and V bytes per cell
	Tokens   []int32  `json:"tokens"`
	Dropped  []int    `json:"dropped"`
}

func (s *staged) header() stagedCacheHeader {
	h := stagedCacheHeader{Mode: s.mode, NLayer: s.engine.NLayer(), NEmbd: s.engine.NEmbd(), NVocab: s.engine.NVocab(),
		Segments: append([]int{0}, s.sched.Layers...), Tokens: s.tokens, Dropped: s.dropped}
	for il := range h.NLayer {
		k, v := s.engine.RowBytes(il)
		h.RowBytes = append(h.RowBytes, [2]int{k, v})
	}
	return h
}

// saveState writes the per-layer caches and their tokens to path (the
// staged modes' SetPathPromptCache), through a temporary file renamed
// into place. KV-policy attention statistics are not saved: restored
// cells start from 0.
func (s *staged) saveState(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing to remove
	w := bufio.NewWriter(tmp)
	head, err := json.Marshal(s.header())
	if err != nil {
		tmp.Close()
		return err
	}
	w.WriteString(stagedCacheMagic)
	binary.Write(w, binary.LittleEndian, uint32(len(head)))
	w.Write(head)
	for il := range s.engine.NLayer() {
		pos, k, v := s.engine.LayerState(il)
		binary.Write(w, binary.LittleEndian, uint32(len(pos)))
		binary.Write(w, binary.LittleEndian, pos)
		w.Write(k)
		w.Write(v)
	}
	if err := errors.Join(w.Flush(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadState restores what saveState wrote. A file for another model
// shape, mode or schedule, or not a staged-mode cache, is an error; the
// caches are then empty.
func (s *staged) loadState(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, len(stagedCacheMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != stagedCacheMagic {
		return fmt.Errorf("%s is not a staged-mode prompt cache (mode %s cannot read llama.cpp's state files)", path, s.mode)
	}
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > 1<<30 {
		return fmt.Errorf("%s: bad header", path)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(r, raw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var h stagedCacheHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	want := s.header()
	if h.Mode != want.Mode || h.NLayer != want.NLayer || h.NEmbd != want.NEmbd || h.NVocab != want.NVocab ||
		!slices.Equal(h.Segments, want.Segments) || !slices.Equal(h.RowBytes, want.RowBytes) || len(h.Dropped) != len(h.Tokens) {
		return fmt.Errorf("%s was written for another model, mode or schedule (mode %s, %d layers, segments %v; this is mode %s, %d layers, segments %v)",
			path, h.Mode, h.NLayer, h.Segments, want.Mode, want.NLayer, want.Segments)
	}
	if len(h.Tokens) >= s.engine.NCtx() {
		return fmt.Errorf("%s holds %d tokens, more than the context of %d", path, len(h.Tokens), s.engine.NCtx())
	}
	s.clear()
	if err := s.engine.Reset(h.Segments); err != nil {
		return err
	}
	for il := range h.NLayer {
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) > len(h.Tokens) {
			s.clear()
			return fmt.Errorf("%s: layer %d: bad cell count", path, il)
		}
		pos := make([]int32, n)
		k, v := make([]byte, int(n)*h.RowBytes[il][0]), make([]byte, int(n)*h.RowBytes[il][1])
		err := binary.Read(r, binary.LittleEndian, pos)
		if err == nil {
			_, err = io.ReadFull(r, k)
		}
		if err == nil {
			_, err = io.ReadFull(r, v)
		}
		if err == nil && n > 0 && int(pos[n-1]) >= len(h.Tokens) {
			err = errors.New("a cell past the saved tokens")
		}
		if err == nil {
			err = s.engine.SetLayerState(il, pos, k, v)
		}
		if err != nil {
			s.clear()
			return fmt.Errorf("%s: layer %d: %w", path, il, err)
		}
	}
	s.tokens, s.dropped = h.Tokens, h.Dropped
	return nil
}

// clear empties every layer's cache.
func (s *staged) clear() {
	s.engine.Remove(0, -1)
	s.tokens, s.dropped = nil, nil
}

// restorePromptCache loads po.PathPromptCache, when it exists and could
// serve more of toks than the caches in memory, as mode llamacpp does.
func (s *staged) restorePromptCache(po PredictOptions, toks []int32) error {
	if po.PathPromptCache == "" || commonPrefix(s.tokens, toks) >= len(toks)-1 {
		return nil
	}
	if _, err := os.Stat(po.PathPromptCache); err != nil {
		return nil // written after this call's prefill
	}
	if err := s.loadState(po.PathPromptCache); err != nil {
		return fmt.Errorf("llama: prompt cache: %w", err)
	}
	return nil
}

// savePromptCache writes po.PathPromptCache when the options ask for it
// (now: after the prefill, or after generation with PromptCacheAll).
func (s *staged) savePromptCache(po PredictOptions, now bool) error {
	if po.PathPromptCache == "" || po.PromptCacheRO || !now {
		return nil
	}
	if err := s.saveState(po.PathPromptCache); err != nil {
		return fmt.Errorf("llama: prompt cache: %w", err)
	}
	return nil
}
