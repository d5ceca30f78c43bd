package testmodel

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sdtp/sdtp/gguf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeAndOpen(t *testing.T, cfg Config) (*gguf.File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), cfg.Arch+".gguf")
	require.NoError(t, Write(path, cfg))
	f, err := gguf.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f, path
}

func TestModels(t *testing.T) {
	for _, cfg := range []Config{Llama(), Gemma3()} {
		t.Run(cfg.Arch, func(t *testing.T) {
			f, _ := writeAndOpen(t, cfg)
			a := cfg.Arch
			arch, err := f.Architecture()
			require.NoError(t, err)
			assert.Equal(t, a, arch)

			// Hyperparameters, with the exact types llama.cpp demands.
			for key, want := range map[string]uint32{
				a + ".context_length":          uint32(cfg.ContextLength),
				a + ".embedding_length":        uint32(cfg.NEmbd),
				a + ".block_count":             uint32(cfg.NLayer),
				a + ".feed_forward_length":     uint32(cfg.NFF),
				a + ".attention.head_count":    uint32(cfg.NHead),
				a + ".attention.head_count_kv": uint32(cfg.NHeadKV),
				a + ".attention.key_length":    uint32(cfg.HeadDim),
				a + ".rope.dimension_count":    uint32(cfg.HeadDim),
			} {
				got, err := f.GetUint32(key)
				require.NoError(t, err, key)
				assert.Equal(t, want, got, key)
			}
			for _, key := range []string{"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"} {
				_, err := f.GetUint32(key)
				require.NoError(t, err, key)
			}
			eps, err := f.GetFloat32(a + ".attention.layer_norm_rms_epsilon")
			require.NoError(t, err)
			assert.Equal(t, cfg.RMSNormEps, eps)
			if a == ArchGemma3 {
				sw, err := f.GetUint32("gemma3.attention.sliding_window")
				require.NoError(t, err)
				assert.Equal(t, uint32(32), sw)
				assert.Less(t, int(sw), cfg.ContextLength)
			}

			// Vocabulary.
			model, err := f.GetString("tokenizer.ggml.model")
			require.NoError(t, err)
			assert.Equal(t, "llama", model)
			tokens, err := f.GetStrings("tokenizer.ggml.tokens")
			require.NoError(t, err)
			scores, err := f.GetFloat32s("tokenizer.ggml.scores")
			require.NoError(t, err)
			types, err := f.GetInt32s("tokenizer.ggml.token_type")
			require.NoError(t, err)
			require.Len(t, scores, len(tokens))
			require.Len(t, types, len(tokens))
			assert.GreaterOrEqual(t, len(tokens), 300)
			assert.LessOrEqual(t, len(tokens), 700)
			nv, err := f.GetUint32(a + ".vocab_size")
			require.NoError(t, err)
			assert.Equal(t, len(tokens), int(nv))
			seen := map[string]bool{}
			for _, tok := range tokens {
				require.False(t, seen[tok], "duplicate token %q (llama.cpp asserts uniqueness)", tok)
				require.NotEmpty(t, tok)
				seen[tok] = true
			}
			byteIDs := map[int]bool{}
			for b := 0; b < 256; b++ {
				id := indexOf(tokens, fmt.Sprintf("<0x%02X>", b))
				require.GreaterOrEqual(t, id, 0, "byte token %02X", b)
				assert.Equal(t, TokenTypeByte, types[id])
				byteIDs[id] = true
			}
			for id, ty := range types {
				if ty == TokenTypeByte {
					assert.True(t, byteIDs[id])
				}
			}
			assert.GreaterOrEqual(t, indexOf(tokens, "▁"), 0)
			assert.GreaterOrEqual(t, indexOf(tokens, "▁the"), 0)
			bos, _ := f.GetUint32("tokenizer.ggml.bos_token_id")
			eos, _ := f.GetUint32("tokenizer.ggml.eos_token_id")
			unk, _ := f.GetUint32("tokenizer.ggml.unknown_token_id")
			assert.Equal(t, TokenTypeControl, types[bos])
			assert.Equal(t, TokenTypeControl, types[eos])
			assert.Equal(t, TokenTypeUnknown, types[unk])
			addBOS, err := f.GetBool("tokenizer.ggml.add_bos_token")
			require.NoError(t, err)
			assert.True(t, addBOS)

			// Tensors.
			nEmbd, nVocab := uint64(cfg.NEmbd), uint64(len(tokens))
			want := map[string][]uint64{
				"token_embd.weight":  {nEmbd, nVocab},
				"output_norm.weight": {nEmbd},
			}
			if !cfg.TieEmbeddings {
				want["output.weight"] = []uint64{nEmbd, nVocab}
			}
			hd, q, kv, ff := uint64(cfg.HeadDim), uint64(cfg.HeadDim*cfg.NHead), uint64(cfg.HeadDim*cfg.NHeadKV), uint64(cfg.NFF)
			for il := 0; il < cfg.NLayer; il++ {
				p := fmt.Sprintf("blk.%d.", il)
				want[p+"attn_norm.weight"] = []uint64{nEmbd}
				want[p+"attn_q.weight"] = []uint64{nEmbd, q}
				want[p+"attn_k.weight"] = []uint64{nEmbd, kv}
				want[p+"attn_v.weight"] = []uint64{nEmbd, kv}
				want[p+"attn_output.weight"] = []uint64{q, nEmbd}
				want[p+"ffn_norm.weight"] = []uint64{nEmbd}
				want[p+"ffn_gate.weight"] = []uint64{nEmbd, ff}
				want[p+"ffn_up.weight"] = []uint64{nEmbd, ff}
				want[p+"ffn_down.weight"] = []uint64{ff, nEmbd}
				if a == ArchGemma3 {
					want[p+"attn_q_norm.weight"] = []uint64{hd}
					want[p+"attn_k_norm.weight"] = []uint64{hd}
					want[p+"post_attention_norm.weight"] = []uint64{nEmbd}
					want[p+"post_ffw_norm.weight"] = []uint64{nEmbd}
				}
			}
			// llama.cpp rejects files with unexpected extra tensors, so the
			// set must match exactly.
			got := map[string][]uint64{}
			for _, ti := range f.Tensors {
				got[ti.Name] = ti.Dims
				assert.Equal(t, gguf.GGMLTypeF32, ti.Type, ti.Name)
			}
			assert.Equal(t, want, got)

			// Weights are random with the configured spread; norms are 1.
			w, err := f.TensorFloat32s("blk.0.attn_q.weight")
			require.NoError(t, err)
			assert.InDelta(t, cfg.WeightStd, stddev(w), cfg.WeightStd*0.15)
			n, err := f.TensorFloat32s("output_norm.weight")
			require.NoError(t, err)
			for _, x := range n {
				assert.Equal(t, float32(1), x)
			}
		})
	}
}

func TestDeterministicAndSeeded(t *testing.T) {
	dir := t.TempDir()
	p1, p2, p3 := filepath.Join(dir, "1"), filepath.Join(dir, "2"), filepath.Join(dir, "3")
	require.NoError(t, Write(p1, Llama()))
	require.NoError(t, Write(p2, Llama()))
	cfg := Llama()
	cfg.Seed = 2
	require.NoError(t, Write(p3, cfg))
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	b3, _ := os.ReadFile(p3)
	assert.Equal(t, b1, b2)
	assert.NotEqual(t, b1, b3)
	assert.Equal(t, len(b1), len(b3))
}

// Matrices are stored in the asked type, vectors in F32, and read back as
// the random weights they encode.
func TestWeightTypes(t *testing.T) {
	for _, tc := range []struct {
		typ      gguf.GGMLType
		fileType uint32
	}{{gguf.GGMLTypeF16, 1}, {gguf.GGMLTypeQ8_0, 7}} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			cfg := Gemma3()
			cfg.WeightType = tc.typ
			f, _ := writeAndOpen(t, cfg)
			ft, err := f.GetUint32("general.file_type")
			require.NoError(t, err)
			assert.Equal(t, tc.fileType, ft)
			for _, ti := range f.Tensors {
				if len(ti.Dims) == 2 {
					assert.Equal(t, tc.typ, ti.Type, ti.Name)
				} else {
					assert.Equal(t, gguf.GGMLTypeF32, ti.Type, ti.Name)
				}
			}
			w, err := f.TensorFloat32s("token_embd.weight")
			require.NoError(t, err)
			assert.InDelta(t, cfg.WeightStd, stddev(w), cfg.WeightStd*0.1)
		})
	}
	cfg := Gemma3()
	cfg.WeightType = gguf.GGMLTypeQ4_K
	assert.ErrorContains(t, Write(filepath.Join(t.TempDir(), "x"), cfg), "weight type")
}

func TestBadConfig(t *testing.T) {
	cfg := Llama()
	cfg.Arch = "mamba"
	assert.Error(t, Write(filepath.Join(t.TempDir(), "x"), cfg))
	cfg = Llama()
	cfg.HeadDim = 8
	assert.Error(t, Write(filepath.Join(t.TempDir(), "x"), cfg))
	cfg = Llama()
	cfg.NHeadKV = 3
	assert.Error(t, Write(filepath.Join(t.TempDir(), "x"), cfg))
	cfg = Gemma3()
	cfg.NLayer = 4 // no global layer: llama.cpp would abort in llama_decode
	assert.Error(t, Write(filepath.Join(t.TempDir(), "x"), cfg))
	cfg.SlidingWindow = 0
	assert.NoError(t, Write(filepath.Join(t.TempDir(), "x"), cfg))
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func stddev(v []float32) float64 {
	var sum, sq float64
	for _, x := range v {
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	n := float64(len(v))
	m := sum / n
	return math.Sqrt(sq/n - m*m)
}
