// Package reference is a plain float32 transformer forward pass (llama and
// gemma3, F32 GGUF files) with token pruning: slow and simple, written
// independently of llama.cpp and the bridge so that tests can check the
// staged engine against it.
package reference

import (
	"errors"
	"fmt"
	"math"

	"github.com/go-sdtp/sdtp/gguf"
)

type layer struct {
	attnNorm, ffnNorm, qNorm, kNorm, postAttn, postFFN []float32
	wq, wk, wv, wo, gate, up, down                     []float32 // [out][in]
}

// Model holds the weights and shape of a small model.
type Model struct {
	gemma                             bool
	nLayer, d, nHead, nKV, hd, nFF    int
	nVocab, window                    int
	eps, ropeBase, ropeBaseSWA, scale float64
	tokEmbd, outNorm, output          []float32
	layers                            []layer
}

// Load reads a llama or gemma3 model whose weights are F32/F16.
func Load(path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	arch, err := f.Architecture()
	if err != nil {
		return nil, err
	}
	if arch != "llama" && arch != "gemma3" {
		return nil, fmt.Errorf("reference: architecture %s not implemented", arch)
	}
	m := &Model{gemma: arch == "gemma3"}
	var errs []error
	geti := func(k string) int {
		v, err := f.GetInt(arch + "." + k)
		errs = append(errs, err)
		return int(v)
	}
	m.nLayer, m.d, m.nFF = geti("block_count"), geti("embedding_length"), geti("feed_forward_length")
	m.nHead, m.nKV, m.hd = geti("attention.head_count"), geti("attention.head_count_kv"), geti("attention.key_length")
	eps, err := f.GetFloat(arch + ".attention.layer_norm_rms_epsilon")
	errs = append(errs, err)
	base, err := f.GetFloat(arch + ".rope.freq_base")
	errs = append(errs, err)
	m.eps, m.ropeBase, m.ropeBaseSWA = eps, base, 10000 // llama.cpp fixes gemma3's local base
	if w, err := f.GetInt(arch + ".attention.sliding_window"); err == nil && m.gemma {
		m.window = int(w)
	}
	m.scale = 1 / math.Sqrt(float64(m.hd))
	t := func(name string) []float32 {
		v, err := f.TensorFloat32s(name)
		errs = append(errs, err)
		return v
	}
	m.tokEmbd, m.outNorm = t("token_embd.weight"), t("output_norm.weight")
	if _, ok := f.Tensor("output.weight"); ok {
		m.output = t("output.weight")
	} else {
		m.output = m.tokEmbd
	}
	m.nVocab = len(m.tokEmbd) / m.d
	for il := range m.nLayer {
		p := fmt.Sprintf("blk.%d.", il)
		L := layer{attnNorm: t(p + "attn_norm.weight"), ffnNorm: t(p + "ffn_norm.weight"),
			wq: t(p + "attn_q.weight"), wk: t(p + "attn_k.weight"), wv: t(p + "attn_v.weight"), wo: t(p + "attn_output.weight"),
			gate: t(p + "ffn_gate.weight"), up: t(p + "ffn_up.weight"), down: t(p + "ffn_down.weight")}
		if m.gemma {
			L.qNorm, L.kNorm = t(p+"attn_q_norm.weight"), t(p+"attn_k_norm.weight")
			L.postAttn, L.postFFN = t(p+"post_attention_norm.weight"), t(p+"post_ffw_norm.weight")
		}
		m.layers = append(m.layers, L)
	}
	return m, errors.Join(errs...)
}

// swa reports whether layer il attends within the sliding window (gemma3:
// every layer but each sixth).
func (m *Model) swa(il int) bool { return m.window > 0 && il%6 < 5 }

// Cache holds, per layer, the positions and K/V of the tokens alive there.
type Cache struct {
	pos  [][]int32
	k, v [][][]float32
}

// Prefill runs the prompt; live[l] are the indices of the tokens alive at
// layer l (ascending, each a subset of the previous layer's). It returns the
// last token's logits and the per-layer cache.
func (m *Model) Prefill(tokens []int32, live [][]int) ([]float32, *Cache) {
	return m.prefill(tokens, live, nil)
}

// WindowAttention runs Prefill and returns, for every layer, the softmax
// attention that the last window tokens alive there pay each token cached
// there, summed over those queries, per head: [layer][head][cell], cells in
// increasing position. fullMask scores sliding-window layers with the full
// causal mask instead of their own.
func (m *Model) WindowAttention(tokens []int32, live [][]int, window int, fullMask bool) [][][]float64 {
	out := make([][][]float64, m.nLayer)
	m.prefill(tokens, live, func(il int, c *Cache, qs [][]float32, pos []int32) {
		out[il] = make([][]float64, m.nHead)
		for h := range out[il] {
			out[il][h] = make([]float64, len(c.pos[il]))
		}
		for j := len(qs) - window; j < len(qs); j++ {
			for h, w := range m.weights(il, c, qs[j], pos[j], fullMask) {
				for ci, v := range w {
					out[il][h][ci] += v
				}
			}
		}
	})
	return out
}

// prefill is Prefill; onLayer, when set, sees each layer's queries once
// the layer's cache holds the tokens alive there.
func (m *Model) prefill(tokens []int32, live [][]int, onLayer func(il int, c *Cache, qs [][]float32, pos []int32)) ([]float32, *Cache) {
	c := &Cache{pos: make([][]int32, m.nLayer), k: make([][][]float32, m.nLayer), v: make([][][]float32, m.nLayer)}
	h := make([][]float32, len(tokens))
	for i, tok := range tokens {
		h[i] = m.embed(tok)
	}
	for il := range m.nLayer {
		idx := live[il]
		xs := make([][]float32, len(idx))
		pos := make([]int32, len(idx))
		for j, i := range idx {
			xs[j], pos[j] = h[i], int32(i)
		}
		out, qs := m.layer(il, c, xs, pos)
		if onLayer != nil {
			onLayer(il, c, qs, pos)
		}
		for j, i := range idx {
			h[i] = out[j]
		}
	}
	last := live[m.nLayer-1]
	return m.logits(h[last[len(last)-1]]), c
}

// Decode runs one new token at position pos over the cache.
func (m *Model) Decode(c *Cache, tok, pos int32) []float32 {
	x := m.embed(tok)
	for il := range m.nLayer {
		out, _ := m.layer(il, c, [][]float32{x}, []int32{pos})
		x = out[0]
	}
	return m.logits(x)
}

func (m *Model) embed(tok int32) []float32 {
	x := append([]float32(nil), m.tokEmbd[int(tok)*m.d:(int(tok)+1)*m.d]...)
	if m.gemma {
		s := float32(math.Sqrt(float64(m.d)))
		for i := range x {
			x[i] *= s
		}
	}
	return x
}

func (m *Model) logits(x []float32) []float32 {
	return matvec(m.output, rmsNorm(x, m.outNorm, m.eps), m.nVocab)
}

// layer runs one block for the tokens xs at positions pos: their K/V join
// the layer's cache first, then each attends causally over the cache. It
// returns the outputs and the queries.
func (m *Model) layer(il int, c *Cache, xs [][]float32, pos []int32) ([][]float32, [][]float32) {
	L := m.layers[il]
	qs := make([][]float32, len(xs))
	for j, x := range xs {
		n := rmsNorm(x, L.attnNorm, m.eps)
		q, k, v := matvec(L.wq, n, m.nHead*m.hd), matvec(L.wk, n, m.nKV*m.hd), matvec(L.wv, n, m.nKV*m.hd)
		if m.gemma {
			q, k = headNorm(q, L.qNorm, m.hd, m.eps), headNorm(k, L.kNorm, m.hd, m.eps)
		}
		base := m.ropeBase
		if m.swa(il) {
			base = m.ropeBaseSWA
		}
		m.rope(q, pos[j], base)
		m.rope(k, pos[j], base)
		qs[j] = q
		c.pos[il] = append(c.pos[il], pos[j])
		c.k[il] = append(c.k[il], k)
		c.v[il] = append(c.v[il], v)
	}
	out := make([][]float32, len(xs))
	for j, x := range xs {
		a := matvec(L.wo, m.attend(il, c, qs[j], pos[j]), m.d)
		var r []float32
		if m.gemma {
			sa := add(x, rmsNorm(a, L.postAttn, m.eps))
			n := rmsNorm(sa, L.ffnNorm, m.eps)
			r = add(sa, rmsNorm(m.ffn(L, n, gelu), L.postFFN, m.eps))
		} else {
			fin := add(x, a)
			r = add(fin, m.ffn(L, rmsNorm(fin, L.ffnNorm, m.eps), silu))
		}
		out[j] = r
	}
	return out, qs
}

// attend is softmax attention of one query over the layer's cached cells
// at positions <= p (within the window on sliding-window layers).
func (m *Model) attend(il int, c *Cache, q []float32, p int32) []float32 {
	out := make([]float32, m.nHead*m.hd)
	group := m.nHead / m.nKV
	for h, w := range m.weights(il, c, q, p, false) {
		kvh := h / group
		for ci, wi := range w {
			v := c.v[il][ci][kvh*m.hd : (kvh+1)*m.hd]
			for e := range v {
				out[h*m.hd+e] += float32(wi * float64(v[e]))
			}
		}
	}
	return out
}

// weights are one query's softmax attention weights over the layer's
// cached cells, per head ([head][cell], 0 where masked): cells at
// positions <= p, within the window on sliding-window layers unless
// fullMask.
func (m *Model) weights(il int, c *Cache, q []float32, p int32, fullMask bool) [][]float64 {
	group := m.nHead / m.nKV
	out := make([][]float64, m.nHead)
	for h := range m.nHead {
		qh := q[h*m.hd : (h+1)*m.hd]
		kvh := h / group
		w := make([]float64, len(c.pos[il]))
		seen := make([]bool, len(w))
		maxS := math.Inf(-1)
		for ci, cp := range c.pos[il] {
			if cp > p || (!fullMask && m.swa(il) && int(p-cp) >= m.window) {
				continue
			}
			s := 0.0
			k := c.k[il][ci][kvh*m.hd : (kvh+1)*m.hd]
			for i := range qh {
				s += float64(qh[i]) * float64(k[i])
			}
			w[ci], seen[ci] = s*m.scale, true // gemma3 scales q by the same 1/sqrt(hd) before attention
			maxS = math.Max(maxS, w[ci])
		}
		sum := 0.0
		for ci := range w {
			if seen[ci] {
				w[ci] = math.Exp(w[ci] - maxS)
				sum += w[ci]
			}
		}
		for ci := range w {
			if seen[ci] {
				w[ci] /= sum
			} else {
				w[ci] = 0
			}
		}
		out[h] = w
	}
	return out
}

// rope rotates each head; llama pairs adjacent dims, gemma3 (NeoX style)
// pairs dim i with i + hd/2.
func (m *Model) rope(x []float32, pos int32, base float64) {
	half := m.hd / 2
	for h := 0; h < len(x)/m.hd; h++ {
		v := x[h*m.hd : (h+1)*m.hd]
		for i := range half {
			theta := float64(pos) * math.Pow(base, -2*float64(i)/float64(m.hd))
			sin, cos := math.Sincos(theta)
			a, b := 2*i, 2*i+1
			if m.gemma {
				a, b = i, i+half
			}
			x0, x1 := float64(v[a]), float64(v[b])
			v[a], v[b] = float32(x0*cos-x1*sin), float32(x0*sin+x1*cos)
		}
	}
}

func (m *Model) ffn(L layer, x []float32, act func(float64) float64) []float32 {
	g, u := matvec(L.gate, x, m.nFF), matvec(L.up, x, m.nFF)
	for i := range g {
		g[i] = float32(act(float64(g[i])) * float64(u[i]))
	}
	return matvec(L.down, g, m.d)
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

func gelu(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func rmsNorm(x, w []float32, eps float64) []float32 {
	ss := 0.0
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(float64(v)*inv) * w[i]
	}
	return out
}

func headNorm(x, w []float32, hd int, eps float64) []float32 {
	out := make([]float32, 0, len(x))
	for h := 0; h < len(x); h += hd {
		out = append(out, rmsNorm(x[h:h+hd], w, eps)...)
	}
	return out
}

func matvec(w, x []float32, rows int) []float32 {
	out := make([]float32, rows)
	n := len(x)
	for r := range rows {
		s := 0.0
		row := w[r*n : (r+1)*n]
		for i, v := range x {
			s += float64(row[i]) * float64(v)
		}
		out[r] = float32(s)
	}
	return out
}

func add(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}
