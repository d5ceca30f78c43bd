// Package predictor holds the token scorers that plug into the SDTP stage
// loop (sdtp.Scorer): training-free ones here, learned ones in
// subpackages. Scorers register by name, like database/sql drivers.
package predictor

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"

	"github.com/go-sdtp/sdtp/sdtp"
)

// ErrMismatch is returned for predictors that do not fit the model: trained
// for another architecture, depth, width or embeddings, or with other
// protection settings.
var ErrMismatch = errors.New("predictors do not match the model")

// Factory makes a scorer; seed makes random choices reproducible.
type Factory func(seed uint64) (sdtp.Scorer, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a scorer available by name; it panics on duplicates, as
// database/sql.Register does, since that is a programming error.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("predictor: Register called twice for " + name)
	}
	factories[name] = f
}

// New makes the scorer registered under name.
func New(name string, seed uint64) (sdtp.Scorer, error) {
	mu.RLock()
	f, ok := factories[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("predictor: unknown scorer %q (have %v)", name, Names())
	}
	return f(seed)
}

// Names lists the registered scorers.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	var out []string
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func init() {
	Register("random", func(seed uint64) (sdtp.Scorer, error) { return NewRandom(seed), nil })
	Register("attention", func(uint64) (sdtp.Scorer, error) { return Attention{}, nil })
	// Question attention accumulated over layers (AttentionAcc), with the
	// heads pooled by their max (the default), their mean, or the mean of
	// the top two.
	Register("attention-acc", func(uint64) (sdtp.Scorer, error) { return DefaultAttentionAcc(), nil })
	Register("attention-acc-mean", func(uint64) (sdtp.Scorer, error) {
		a := DefaultAttentionAcc()
		a.Pool = PoolMean
		return a, nil
	})
	Register("attention-acc-top2", func(uint64) (sdtp.Scorer, error) {
		a := DefaultAttentionAcc()
		a.Pool, a.TopK = PoolTopK, 2
		return a, nil
	})
}

// Random scores tokens uniformly at random: the baseline any learned
// predictor must beat at the same schedule.
type Random struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func NewRandom(seed uint64) *Random {
	return &Random{rng: rand.New(rand.NewPCG(seed, 0x5d7b))}
}

func (*Random) Needs() sdtp.Needs { return sdtp.Needs{} }

func (r *Random) Score(in sdtp.ScoreInput) ([]float32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := make([]float32, len(in.Positions))
	for i := range s {
		s[i] = r.rng.Float32()
	}
	return s, nil
}

// Attention is the training-free scorer of LazyLLM / GemFilter: a token's
// score is the mean attention the prompt's last-window queries pay to it at
// the layer before the pruning point.
type Attention struct{}

func (Attention) Needs() sdtp.Needs { return sdtp.Needs{Attention: true} }

func (Attention) Score(in sdtp.ScoreInput) ([]float32, error) {
	if len(in.Attention) != len(in.Positions) {
		return nil, fmt.Errorf("attention scorer: %d scores for %d live tokens", len(in.Attention), len(in.Positions))
	}
	return in.Attention, nil
}
