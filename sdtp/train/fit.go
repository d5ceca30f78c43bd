package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/go-sdtp/sdtp/predictor"
)

// Config sets up one stage's training.
type Config struct {
	Hidden     int     // MLP width; the paper's reimplementations use d/4
	Epochs     int     // passes over the training tokens
	LR         float64 // Adam learning rate
	Batch      int     // tokens per step, all from one sequence
	Pairs      int     // ranking pairs sampled per token, within its batch
	RankWeight float64 // weight of the ranking loss; the MSE term has weight 1
	Patience   int     // stop after this many epochs without a better validation Spearman (0: never)
	Seed       uint64
}

// EpochStats is the state after one epoch.
type EpochStats struct {
	Loss, ValSpearman, ValKendall float64
}

// Result is a trained predictor and how well it ranks held-out tokens.
type Result struct {
	MLP                     predictor.MLP
	ValSpearman, ValKendall float64 // mean over held-out sequences, best epoch
	BestEpoch               int
	History                 []EpochStats
}

// mlp is the trainable form: pi = v·GELU(W1·x̂ + b1) + c on standardized
// inputs x̂ = (x − mu)/sigma; Export folds the standardization into W1, b1.
// d is the input width: the hidden state's plus context's.
type mlp struct {
	d, h      int
	context   int // of d, context features
	mu, sigma []float32
	w1, b1    []float32 // [h][d], [h]
	v         []float32 // [h]
	c         float32
}

// Train fits one stage's predictor: MSE to the rank-normalized importance
// plus a pairwise ranking loss log(1+exp(−(pi_i−pi_j)·sign(s_i−s_j))) over
// Pairs partners per token drawn from its batch, with Adam; the epoch with
// the best held-out Spearman wins. progress, if set, sees every step.
// The inputs are d-wide hidden states followed by k context features.
func Train(train, val []Example, d, k int, cfg Config, progress func(loss float64)) (Result, error) {
	var res Result
	if len(train) == 0 || len(val) == 0 {
		return res, errors.New("train: no training or validation examples")
	}
	if cfg.Hidden <= 0 || cfg.Epochs <= 0 || cfg.Batch < 2 || cfg.LR <= 0 {
		return res, fmt.Errorf("train: bad config %+v", cfg)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5a11))
	m := newMLP(d+k, cfg.Hidden, train, rng)
	m.context = k
	opt := newAdam(m, cfg.LR)

	type batch struct {
		ex   int
		rows []int
	}
	var batches []batch
	targets := make([][]float32, len(train))
	for e, ex := range train {
		targets[e] = rankNormalize(ex.Importance)
		rows := rng.Perm(len(ex.Importance))
		for i := 0; i < len(rows); i += cfg.Batch {
			if b := rows[i:min(i+cfg.Batch, len(rows))]; len(b) >= 2 {
				batches = append(batches, batch{e, b})
			}
		}
	}
	best := m.clone()
	res.ValSpearman = math.Inf(-1)
	stale := 0
	for epoch := range cfg.Epochs {
		rng.Shuffle(len(batches), func(i, j int) { batches[i], batches[j] = batches[j], batches[i] })
		var total float64
		for _, b := range batches {
			ex := train[b.ex]
			loss := m.step(opt, ex, targets[b.ex], b.rows, cfg, rng)
			total += loss
			if progress != nil {
				progress(loss)
			}
		}
		sp, kt := m.evaluate(val)
		res.History = append(res.History, EpochStats{total / float64(len(batches)), sp, kt})
		if sp > res.ValSpearman {
			res.ValSpearman, res.ValKendall, res.BestEpoch = sp, kt, epoch+1
			best = m.clone()
			stale = 0
		} else if stale++; cfg.Patience > 0 && stale >= cfg.Patience {
			break
		}
	}
	res.MLP = best.export()
	return res, nil
}

func newMLP(d, h int, train []Example, rng *rand.Rand) *mlp {
	m := &mlp{d: d, h: h, mu: make([]float32, d), sigma: make([]float32, d),
		w1: make([]float32, h*d), b1: make([]float32, h), v: make([]float32, h)}
	// Per-dimension standardization: residual streams have a few huge
	// dimensions that would otherwise dominate the first layer.
	var n float64
	sum, sq := make([]float64, d), make([]float64, d)
	for _, ex := range train {
		for i, x := range ex.Input {
			sum[i%d] += float64(x)
			sq[i%d] += float64(x) * float64(x)
		}
		n += float64(len(ex.Importance))
	}
	for j := range d {
		mean := sum[j] / n
		m.mu[j] = float32(mean)
		m.sigma[j] = float32(math.Max(math.Sqrt(math.Max(sq[j]/n-mean*mean, 0)), 1e-6))
	}
	for i := range m.w1 {
		m.w1[i] = float32(rng.NormFloat64() / math.Sqrt(float64(d)))
	}
	for i := range m.v {
		m.v[i] = float32(rng.NormFloat64() / math.Sqrt(float64(h)))
	}
	return m
}

func (m *mlp) clone() *mlp {
	c := *m
	c.w1, c.b1, c.v = append([]float32(nil), m.w1...), append([]float32(nil), m.b1...), append([]float32(nil), m.v...)
	return &c
}

// export folds the standardization into the first layer and splits the
// scalar score into the (keep, drop) pair of the predictor contract.
func (m *mlp) export() predictor.MLP {
	out := predictor.MLP{D: m.d - m.context, Context: m.context, H: m.h, W1: make([]float32, m.h*m.d), B1: make([]float32, m.h),
		W2: make([]float32, 2*m.h), B2: []float32{m.c / 2, -m.c / 2}}
	for j := range m.h {
		b := float64(m.b1[j])
		for k := range m.d {
			w := m.w1[j*m.d+k] / m.sigma[k]
			out.W1[j*m.d+k] = w
			b -= float64(w) * float64(m.mu[k])
		}
		out.B1[j] = float32(b)
		out.W2[j], out.W2[m.h+j] = m.v[j]/2, -m.v[j]/2
	}
	return out
}

// forward computes the standardized inputs, pre-activations and scores of
// rows of ex.
func (m *mlp) forward(ex Example, rows []int) (x, z, pi []float32) {
	d, h, b := m.d, m.h, len(rows)
	x = make([]float32, b*d)
	for r, i := range rows {
		src := ex.Input[i*d : (i+1)*d]
		for k, v := range src {
			x[r*d+k] = (v - m.mu[k]) / m.sigma[k]
		}
	}
	z = make([]float32, b*h)
	blas32.Gemm(blas.NoTrans, blas.Trans, 1, general(x, b, d), general(m.w1, h, d), 0, general(z, b, h))
	pi = make([]float32, b)
	for r := range b {
		s := float64(m.c)
		for j := range h {
			z[r*h+j] += m.b1[j]
			s += float64(m.v[j]) * gelu(float64(z[r*h+j]))
		}
		pi[r] = float32(s)
	}
	return x, z, pi
}

// step runs one Adam step on a batch and returns its loss.
func (m *mlp) step(opt *adam, ex Example, target []float32, rows []int, cfg Config, rng *rand.Rand) float64 {
	d, h, b := m.d, m.h, len(rows)
	x, z, pi := m.forward(ex, rows)
	dpi := make([]float64, b)
	var mse float64
	for r, i := range rows {
		e := float64(pi[r]) - float64(target[i])
		mse += e * e / float64(b)
		dpi[r] = 2 * e / float64(b)
	}
	var rank float64
	var pairs int
	for r := range b {
		for range cfg.Pairs {
			q := rng.IntN(b)
			si, sj := ex.Importance[rows[r]], ex.Importance[rows[q]]
			if q == r || si == sj {
				continue
			}
			pairs++
			sign := 1.0
			if si < sj {
				sign = -1
			}
			u := (float64(pi[r]) - float64(pi[q])) * sign
			rank += softplus(-u)
			g := -sigmoid(-u) * sign // d softplus(−u) / d pi_r
			dpi[r] += cfg.RankWeight * g / float64(b*cfg.Pairs)
			dpi[q] -= cfg.RankWeight * g / float64(b*cfg.Pairs)
		}
	}
	if pairs > 0 {
		rank /= float64(pairs)
	}

	gv, gb1 := make([]float32, h), make([]float32, h)
	var gc float64
	dz := make([]float32, b*h)
	for r := range b {
		gc += dpi[r]
		for j := range h {
			zz := float64(z[r*h+j])
			gv[j] += float32(dpi[r] * gelu(zz))
			g := float32(dpi[r] * float64(m.v[j]) * geluGrad(zz))
			dz[r*h+j] = g
			gb1[j] += g
		}
	}
	gw1 := make([]float32, h*d)
	blas32.Gemm(blas.Trans, blas.NoTrans, 1, general(dz, b, h), general(x, b, d), 0, general(gw1, h, d))
	opt.update(m, gw1, gb1, gv, float32(gc))
	return mse + cfg.RankWeight*rank
}

// evaluate is the mean Spearman and Kendall over examples.
func (m *mlp) evaluate(val []Example) (spearman, kendall float64) {
	for _, ex := range val {
		rows := make([]int, len(ex.Importance))
		for i := range rows {
			rows[i] = i
		}
		_, _, pi := m.forward(ex, rows)
		spearman += Spearman(pi, ex.Importance)
		kendall += Kendall(pi, ex.Importance)
	}
	return spearman / float64(len(val)), kendall / float64(len(val))
}

// Evaluate scores held-out examples with a trained predictor.
func Evaluate(p predictor.MLP, val []Example) (spearman, kendall float64) {
	for _, ex := range val {
		m := len(ex.Importance)
		hidden, context := make([]float32, 0, m*p.D), make([]float32, 0, m*p.Context)
		for i := range m {
			row := ex.Input[i*p.In() : (i+1)*p.In()]
			hidden, context = append(hidden, row[:p.D]...), append(context, row[p.D:]...)
		}
		pi := p.Scores(hidden, context)
		spearman += Spearman(pi, ex.Importance)
		kendall += Kendall(pi, ex.Importance)
	}
	return spearman / float64(len(val)), kendall / float64(len(val))
}

type adam struct {
	lr                 float64
	t                  int
	mw1, vw1, mb1, vb1 []float64
	mv, vv             []float64
	mc, vc             float64
}

func newAdam(m *mlp, lr float64) *adam {
	return &adam{lr: lr, mw1: make([]float64, len(m.w1)), vw1: make([]float64, len(m.w1)),
		mb1: make([]float64, m.h), vb1: make([]float64, m.h), mv: make([]float64, m.h), vv: make([]float64, m.h)}
}

func (a *adam) update(m *mlp, gw1, gb1, gv []float32, gc float32) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	a.t++
	c1, c2 := 1-math.Pow(b1, float64(a.t)), 1-math.Pow(b2, float64(a.t))
	upd := func(w []float32, g []float32, mm, vv []float64) {
		for i := range w {
			gi := float64(g[i])
			mm[i] = b1*mm[i] + (1-b1)*gi
			vv[i] = b2*vv[i] + (1-b2)*gi*gi
			w[i] -= float32(a.lr * (mm[i] / c1) / (math.Sqrt(vv[i]/c2) + eps))
		}
	}
	upd(m.w1, gw1, a.mw1, a.vw1)
	upd(m.b1, gb1, a.mb1, a.vb1)
	upd(m.v, gv, a.mv, a.vv)
	c := []float32{m.c}
	mc, vc := []float64{a.mc}, []float64{a.vc}
	upd(c, []float32{gc}, mc, vc)
	m.c, a.mc, a.vc = c[0], mc[0], vc[0]
}

func general(data []float32, rows, cols int) blas32.General {
	return blas32.General{Rows: rows, Cols: cols, Stride: cols, Data: data}
}

// gelu is the exact (erf) GELU of the predictor contract.
func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

func geluGrad(x float64) float64 {
	return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi)
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
