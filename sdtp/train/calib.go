package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Record is one calibration sequence: what training reads. Hidden states
// are stored as BF16: half the size of F32, and the residual streams of
// some models (Gemma's reach 1e5) overflow F16.
type Record struct {
	Tokens []int32 // the prompt
	// Answer is the reference answer that followed the prompt in the
	// gradient pass (Sequence.Answer); empty for plain text.
	Answer []int32
	// The loss covers the next-token predictions at positions
	// LossFrom..n-2 of Tokens followed by Answer (n tokens): with an
	// answer, exactly the answer's tokens.
	LossFrom int
	Loss     float64 // that mean next-token cross-entropy, dense model
	// Saliency[s][i] = Σ_d x·∂L/∂x for prompt token i's residual stream x
	// entering stage s's layer, in the dense model (signed; training takes
	// |·|).
	Saliency [][]float32
	// GradNorm[s][i] = ‖∂L/∂x‖ of the same stream. With the stream's own
	// norm it splits |sal| = ‖x‖·‖∂L/∂x‖·|cos(x, ∂L/∂x)| (TargetGradNorm,
	// TargetAlignment, Decompose).
	GradNorm [][]float32
	// Hidden[s] are those streams ([n·d]) as the staged engine computes
	// them for inference.
	Hidden [][]uint16
	// The same streams in the pruned model: stages before s prune by the
	// saliency itself (an oracle predictor), so stage s sees what it would
	// see at inference. PrunedPos[s] are the live positions.
	PrunedPos    [][]int32
	PrunedHidden [][]uint16 // [stage][live·d]
}

// Calibrator computes Records with a gradient pass and two staged
// prefills (dense, then pruned by the saliency).
type Calibrator struct {
	Grad     *bridge.Grad
	Engine   *bridge.Engine
	Schedule sdtp.Schedule
	UBatch   int
	// LossWindow is the fraction of the sequence, at its end, whose
	// next-token predictions form the loss L (1: the whole sequence).
	LossWindow float64
}

// LossFrom is the first position whose prediction is in the loss of seq:
// the last prompt token's (it predicts the answer's first) when there is an
// answer, else the start of the prompt's final LossWindow.
func (c *Calibrator) LossFrom(seq Sequence) int {
	n := len(seq.Prompt)
	if len(seq.Answer) > 0 {
		return n - 1
	}
	return min(max(0, n-1-int(math.Ceil(c.LossWindow*float64(n-1)))), n-2)
}

// Run calibrates one sequence: the gradient pass over prompt and answer,
// then the prompt's dense and oracle-pruned prefills (causal attention: the
// prompt's streams do not depend on the answer after it); a one-stage
// schedule needs the dense prefill only.
func (c *Calibrator) Run(seq Sequence) (Record, error) {
	rec := Record{Tokens: seq.Prompt, Answer: seq.Answer, LossFrom: c.LossFrom(seq)}
	g, err := c.gradient(rec)
	if err != nil {
		return rec, err
	}
	rec.Loss, rec.Saliency, rec.GradNorm = g.loss, g.saliency, g.gradNorm
	keepAll := sdtp.Uniform(c.Schedule.Layers, 1)
	dense := &recorder{}
	if _, err := sdtp.Prefill(context.Background(), c.Engine, dense, keepAll, rec.Tokens, c.UBatch); err != nil {
		return rec, fmt.Errorf("dense pass: %w", err)
	}
	rec.Hidden = dense.hidden
	if len(c.Schedule.Layers) == 1 {
		// The first stage sees the dense states; with no later stage the
		// pruned pass would only repeat the dense one.
		rec.PrunedPos, rec.PrunedHidden = dense.pos, dense.hidden
		return rec, nil
	}
	oracle := &recorder{importance: rec.Saliency}
	if _, err := sdtp.Prefill(context.Background(), c.Engine, oracle, c.Schedule, rec.Tokens, c.UBatch); err != nil {
		return rec, fmt.Errorf("pruned pass: %w", err)
	}
	rec.PrunedPos, rec.PrunedHidden = oracle.pos, oracle.hidden
	return rec, nil
}

// AddGradNorms fills in the GradNorm of a record cached before records
// had it: the gradient pass alone, whose saliency must match the cached
// one.
func (c *Calibrator) AddGradNorms(rec *Record) error {
	g, err := c.gradient(*rec)
	if err != nil {
		return err
	}
	for s, layer := range c.Schedule.Layers {
		if Spearman(g.saliency[s], rec.Saliency[s]) < 0.99 {
			return fmt.Errorf("gradient pass at layer %d disagrees with the cached saliency: the cache is from another model or build", layer)
		}
	}
	rec.GradNorm = g.gradNorm
	return nil
}

// gradientPass is what a record keeps of the gradient pass, per stage.
type gradientPass struct {
	loss               float64
	saliency, gradNorm [][]float32
}

// gradient runs the gradient pass over rec's prompt and answer and its
// loss window; it keeps the prompt tokens' saliencies.
func (c *Calibrator) gradient(rec Record) (gradientPass, error) {
	var g gradientPass
	tokens := append(slices.Clip(rec.Tokens), rec.Answer...)
	res, err := c.Grad.Run(bridge.GradInput{Tokens: tokens, LossFrom: rec.LossFrom, Layers: c.Schedule.Layers, Backward: true})
	if err != nil {
		return g, err
	}
	g.loss = res.Loss
	d, n := c.Engine.NEmbd(), len(rec.Tokens)
	for s := range c.Schedule.Layers {
		g.saliency = append(g.saliency, Saliency(res.Hidden[s][:n*d], res.Grad[s][:n*d], d))
		g.gradNorm = append(g.gradNorm, rowNorms(res.Grad[s][:n*d], d))
	}
	return g, nil
}

// rowNorms is the Euclidean norm of each d-wide row of v.
func rowNorms(v []float32, d int) []float32 {
	out := make([]float32, len(v)/d)
	for i := range out {
		var s float64
		for _, x := range v[i*d : (i+1)*d] {
			s += float64(x) * float64(x)
		}
		out[i] = float32(math.Sqrt(s))
	}
	return out
}

// Saliency is gradient × input summed over the hidden dimension, per token:
// hidden and grad are [n][d].
func Saliency(hidden, grad []float32, d int) []float32 {
	out := make([]float32, len(hidden)/d)
	for i := range out {
		var s float64
		for j := i * d; j < (i+1)*d; j++ {
			s += float64(hidden[j]) * float64(grad[j])
		}
		out[i] = float32(s)
	}
	return out
}

// recorder is a scorer that records what each stage saw; with importance
// it prunes by |importance| (the oracle), else it scores every token 0.
type recorder struct {
	importance [][]float32
	pos        [][]int32
	hidden     [][]uint16
}

func (o *recorder) Needs() sdtp.Needs { return sdtp.Needs{Hidden: true} }

func (o *recorder) Score(in sdtp.ScoreInput) ([]float32, error) {
	o.pos = append(o.pos, slices.Clone(in.Positions))
	o.hidden = append(o.hidden, toBF16(in.Hidden))
	scores := make([]float32, len(in.Positions))
	if o.importance != nil {
		for i, p := range in.Positions {
			scores[i] = float32(math.Abs(float64(o.importance[in.Stage][p])))
		}
	}
	return scores, nil
}

func toBF16(v []float32) []uint16 {
	out := make([]uint16, len(v))
	for i, x := range v {
		out[i] = gguf.Float32ToBF16(x)
	}
	return out
}

func fromBF16(v []uint16) []float32 {
	out := make([]float32, len(v))
	for i, h := range v {
		out[i] = gguf.BF16ToFloat32(h)
	}
	return out
}

// Cache keeps Records on disk, one file per sequence named by a hash of
// its tokens, so a killed calibration restarts where it stopped and runs
// with more samples reuse the sequences already done.
type Cache struct{ Dir string }

// CacheKey names a calibration (a Cache directory) by what changes a
// sequence's record besides its tokens, which name the record's file:
// the model (modelHash), the stage layers, the keep ratios before the
// last stage and the loss window (Calibrator.LossWindow). The last
// stage's keep ratio is left out: a record holds the states each stage
// scores, which only the earlier stages' pruning changes, so a one-stage
// schedule reuses its records at any keep ratio. Returns 16 hex digits.
func CacheKey(modelHash string, s sdtp.Schedule, lossWindow float64) string {
	h := sha256.New()
	fmt.Fprintf(h, "v3 %s %v %v %g", modelHash, s.Layers, s.KeepRatios[:max(len(s.KeepRatios)-1, 0)], lossWindow)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// path names seq's file: a hash of the prompt, and of the answer after a
// −1 (no token id) when there is one, so records of plain text keep the
// names they had before answers.
func (c Cache) path(seq Sequence) string {
	h := sha256.New()
	_ = binary.Write(h, binary.LittleEndian, seq.Prompt)
	if len(seq.Answer) > 0 {
		_ = binary.Write(h, binary.LittleEndian, append([]int32{-1}, seq.Answer...))
	}
	return filepath.Join(c.Dir, "seq-"+hex.EncodeToString(h.Sum(nil))[:16]+".gob")
}

// Load returns the record of seq if it is cached.
func (c Cache) Load(seq Sequence) (Record, bool) {
	f, err := os.Open(c.path(seq))
	if err != nil {
		return Record{}, false
	}
	defer f.Close()
	var rec Record
	if gob.NewDecoder(f).Decode(&rec) != nil || !slices.Equal(rec.Tokens, seq.Prompt) || !slices.Equal(rec.Answer, seq.Answer) {
		return Record{}, false
	}
	return rec, true
}

// Store writes a record atomically (a temporary file renamed into place).
func (c Cache) Store(rec Record) error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.Dir, "tmp-*")
	if err != nil {
		return err
	}
	if err := gob.NewEncoder(tmp).Encode(rec); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), c.path(Sequence{rec.Tokens, rec.Answer}))
}
