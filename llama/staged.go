package llama

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Prefill modes. ModeLlamaCpp, the default, is stock llama_decode: exactly
// go-llama.cpp's behaviour. The others run the staged engine.
const (
	ModeLlamaCpp  = "llamacpp"
	ModeDense     = "dense"     // staged engine, nothing pruned
	ModeSDTP      = "sdtp"      // learned predictors; the attention scorer until they exist
	ModeRandom    = "random"    // prune at random, same schedule
	ModeAttention = "attention" // prune by last-window attention, same schedule
	// ModeAttentionAcc prunes by the question attention accumulated over
	// every layer run so far (predictor.AttentionAcc), same schedule.
	ModeAttentionAcc = "attention-acc"
	// ModeHybrid fuses the learned predictors with the accumulated
	// question attention (predictor.Hybrid), by the predictors' fusion
	// block or predictor.DefaultFusion.
	ModeHybrid = "hybrid"
)

// stagedModes lists the modes that run the staged engine, for messages.
const stagedModes = "dense, sdtp, random, attention, attention-acc, hybrid"

// SDTPOptions turn on Saliency-driven Dynamic Token Pruning.
type SDTPOptions struct {
	Mode       string  // one of the Mode constants; "" = ModeLlamaCpp
	KeepRatio  float64 // per stage; 0 = sdtp.DefaultKeepRatio
	Layers     []int   // pruning layers; nil = sdtp.DefaultSchedule
	Predictors string  // directory with predictors.json + ONNX files; "" = MODEL.predictors/ if present
	Seed       uint64  // for the random scorer
	UBatch     int     // tokens per graph in prefill; 0 = 512
	// ONNXProvider runs ONNX predictors on "cpu" (default), "cuda",
	// "coreml" or "auto" (the first that loads).
	ONNXProvider string
	// KVPolicy compresses the per-layer KV caches after the prefill and
	// during decode (docs/KV.md): sdtp.KVNone ("" too), KVStreaming,
	// KVH2O or KVSnapKV. Staged modes only.
	KVPolicy string
	// KVBudget is the cells each layer may keep: a fraction of the prompt's
	// tokens when in (0, 1], else a token count.
	KVBudget float64
	// SpanKernel > 0 max-pools scores over that many neighbouring live
	// tokens before each selection (sdtp.PoolSpans; odd: SnapKV uses 7,
	// SpecPrefill 13), so kept tokens come in spans. 0 = off. Pruning
	// modes only.
	SpanKernel int
}

// WithSDTP enables a pruning mode (an addition to go-llama.cpp's options).
func WithSDTP(o SDTPOptions) ModelOption { return func(p *ModelOptions) { p.SDTP = o } }

// SDTPStats describes one staged generation: its prefill and KV caches.
type SDTPStats struct {
	Mode         string
	KeptPerStage []int    // live tokens entering each stage
	KeptPerLayer []int    // K/V entries per layer
	FLOPRatio    float64  // prefill FLOPs, dense / this mode
	KVBytes      int64    // after the prefill (and the KV policy's first eviction)
	KVPolicy     string   // sdtp.KVNone unless SDTPOptions.KVPolicy
	KVLimit      int      // cells per layer the policy allows (0: no limit)
	KVPeakBytes  int64    // the most the caches held after any step of the generation
	DroppedAt    []int    // per prompt position: stage that dropped it (0 = kept)
	Pieces       []string // per prompt position: the token's text
	Schedule     sdtp.Schedule
}

// staged is the engine state of a *LLama in a staged mode.
type staged struct {
	engine *bridge.Engine
	scorer sdtp.Scorer
	sched  sdtp.Schedule
	shape  sdtp.Shape
	mode   string
	ubatch int
	kv     *sdtp.KVLimiter
}

// newStaged prepares the engine for o.Mode, or returns nil for llama.cpp's
// own path: mode llamacpp, or mode dense on an architecture the engine does
// not stage (llama_decode computes the same thing). A pruning mode on such
// an architecture is ErrUnsupportedArch.
func newStaged(path string, m *bridge.Model, c *bridge.Context, o SDTPOptions) (*staged, error) {
	mode := o.Mode
	if _, err := sdtp.NewKVLimiter(nil, o.KVPolicy, o.KVBudget); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	kvPolicy := o.KVPolicy != "" && o.KVPolicy != sdtp.KVNone
	switch mode {
	case "", ModeLlamaCpp:
		if kvPolicy {
			return nil, fmt.Errorf("llama: KV policy %s needs a staged mode (%s)", o.KVPolicy, stagedModes)
		}
	case ModeDense, ModeSDTP, ModeRandom, ModeAttention, ModeAttentionAcc, ModeHybrid:
	default:
		return nil, fmt.Errorf("llama: unknown SDTP mode %q (llamacpp, %s)", mode, stagedModes)
	}
	if err := sdtp.ValidateSpanKernel(o.SpanKernel); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	if o.SpanKernel > 0 && (mode == "" || mode == ModeLlamaCpp || mode == ModeDense) {
		return nil, fmt.Errorf("llama: span kernel %d needs a pruning mode; mode %q prunes nothing", o.SpanKernel, mode)
	}
	if mode == "" || mode == ModeLlamaCpp {
		return nil, nil
	}
	if _, ok := bridge.StagedArch(m); !ok {
		if mode == ModeDense && !kvPolicy {
			fmt.Fprintf(os.Stderr, "sdtp: architecture %s is not staged; running densely through llama_decode\n", m.Arch())
			return nil, nil
		}
		return nil, fmt.Errorf("llama: mode %s: %w: %s (it stages dense llama, qwen2, qwen3 and gemma3 models); mode %s runs any model without pruning",
			mode, ErrUnsupportedArch, m.Arch(), ModeLlamaCpp)
	}
	s := &staged{mode: mode, ubatch: o.UBatch}
	if s.ubatch <= 0 {
		s.ubatch = 512
	}
	var err error
	if s.engine, err = c.NewEngine(c.NCtx(), 0); err != nil {
		return nil, err
	}
	if s.kv, err = sdtp.NewKVLimiter(s.engine, o.KVPolicy, o.KVBudget); err != nil {
		s.free()
		return nil, err
	}
	if mode != ModeDense {
		if err := s.pickScorer(path, m, o); err != nil {
			s.free()
			return nil, err
		}
	}
	layers, nEmbd, nVocab := s.engine.Shape()
	s.shape = sdtp.Shape{Layers: layers, NEmbd: nEmbd, NVocab: nVocab}
	return s, nil
}

// pickScorer sets the scorer and schedule for o.Mode. Mode sdtp uses, in
// order: the predictors directory o.Predictors, heads inside the model's
// GGUF, a MODEL.predictors/ directory beside it, and otherwise the
// attention scorer (saying so).
func (s *staged) pickScorer(path string, m *bridge.Model, o SDTPOptions) error {
	ratio := o.KeepRatio
	if ratio == 0 {
		ratio = sdtp.DefaultKeepRatio
	}
	var err error
	if o.Layers != nil {
		s.sched = sdtp.Uniform(o.Layers, ratio)
		err = s.sched.Validate(m.NLayer())
	} else {
		s.sched, err = sdtp.DefaultSchedule(m.NLayer(), ratio)
	}
	if err != nil {
		return err
	}
	s.sched.SpanKernel = o.SpanKernel
	name := o.Mode
	if o.Mode == ModeSDTP || o.Mode == ModeHybrid {
		learned, sched, err := s.learned(path, m, o)
		if err != nil || learned != nil {
			if learned != nil {
				s.scorer, s.sched = learned, withRatio(sched, o.KeepRatio)
				s.sched.SpanKernel = o.SpanKernel
			}
			return err
		}
		if o.Mode == ModeHybrid {
			return fmt.Errorf("llama: mode hybrid needs learned predictors (SDTPOptions.Predictors, heads inside the GGUF, or MODEL.predictors/); mode %s prunes by question attention alone", ModeAttentionAcc)
		}
		fmt.Fprintln(os.Stderr, "sdtp: no learned predictors for this model; pruning with the attention scorer")
		name = ModeAttention
	}
	s.scorer, err = predictor.New(name, o.Seed)
	return err
}

// learned finds learned predictors for the model, or returns nil; in mode
// hybrid, fused with the question attention.
func (s *staged) learned(path string, m *bridge.Model, o SDTPOptions) (sdtp.Scorer, sdtp.Schedule, error) {
	hybrid := o.Mode == ModeHybrid
	fromDir := func(dir string) (sdtp.Scorer, sdtp.Schedule, error) {
		set, err := onnx.LoadFor(dir, path, m.Arch(), m.NLayer(), m.NEmbd(), onnx.Options{Provider: o.ONNXProvider})
		if err != nil {
			return nil, sdtp.Schedule{}, err
		}
		if !hybrid {
			return set, set.Manifest.Schedule(), nil
		}
		noFusion(set.Manifest.Fusion == nil)
		h, err := set.Hybrid()
		if err != nil {
			set.Close()
			return nil, sdtp.Schedule{}, err
		}
		return h, set.Manifest.Schedule(), nil
	}
	if o.Predictors != "" {
		return fromDir(o.Predictors)
	}
	heads, err := gguf.Read(path)
	if err != nil {
		return nil, sdtp.Schedule{}, err
	}
	if heads != nil {
		if hybrid {
			noFusion(heads.Fusion == nil)
			h, err := heads.Hybrid(s.engine)
			if err != nil {
				return nil, sdtp.Schedule{}, err
			}
			return h, heads.Schedule(), nil
		}
		sc, err := heads.Scorer(s.engine)
		return sc, heads.Schedule(), err
	}
	beside := strings.TrimSuffix(path, filepath.Ext(path)) + ".predictors"
	if _, err := os.Stat(filepath.Join(beside, onnx.ManifestName)); err == nil {
		return fromDir(beside)
	}
	return nil, sdtp.Schedule{}, nil
}

// noFusion says so when mode hybrid fuses predictors that carry no fusion
// block of their own.
func noFusion(missing bool) {
	if missing {
		fmt.Fprintln(os.Stderr, "sdtp: the predictors have no fusion block; hybrid fuses by rank, attention weight 0.5 at every stage")
	}
}

// withRatio replaces every keep ratio by r, unless r is 0.
func withRatio(s sdtp.Schedule, r float64) sdtp.Schedule {
	if r == 0 {
		return s
	}
	return sdtp.Uniform(s.Layers, r)
}

func (s *staged) free() {
	s.engine.Free()
	if c, ok := s.scorer.(interface{ Close() }); ok {
		c.Close()
	}
}

// generateStaged is Generate on the staged engine: a pruned prefill, then
// decoding over the per-layer caches. Each call starts from an empty cache.
func (l *LLama) generateStaged(ctx context.Context, toks []int32, po PredictOptions, res *Result, out *output) error {
	s := l.staged
	s.engine.SetThreads(po.Threads)
	l.resetCache() // the llama.cpp context's cache no longer matches
	start := time.Now()
	s.kv.Start()
	pre, err := sdtp.Prefill(ctx, s.engine, s.scorer, s.sched, toks, s.ubatch)
	if err == nil {
		err = s.kv.Prefilled(len(toks))
	}
	res.Prefill = time.Since(start)
	res.PromptTokens = len(toks)
	if err != nil {
		return err
	}
	res.SDTP = s.stats(pre, len(toks))
	st := res.SDTP
	for _, t := range toks {
		res.SDTP.Pieces = append(res.SDTP.Pieces, string(l.model.TokenPiece(t)))
	}

	smp, err := l.newSampler(po, toks)
	if err != nil {
		return err
	}
	defer smp.Free()
	release := s.engine.AbortWhen(ctx)
	defer release()
	start = time.Now()
	defer func() { res.Decode = time.Since(start) }()
	logits, pos := pre.Logits, len(toks)
	sample := func() (int32, error) { return smp.SampleLogits(logits) }
	return l.loop(ctx, po, res, out, sample, func(tok int32) (bool, error) {
		if pos >= l.ctx.NCtx() {
			if po.Tokens == 0 {
				return true, nil
			}
			return true, fmt.Errorf("%w: %d tokens (the staged engine does not shift the context)", ErrContextFull, pos)
		}
		step, err := s.engine.Run(bridge.RunInput{First: 0, Last: s.engine.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(pos)}, WantLogits: true})
		if err == nil {
			err = s.kv.Enforce()
		}
		if err != nil {
			return true, err
		}
		st.KVPeakBytes = max(st.KVPeakBytes, s.engine.KVBytes())
		logits, pos = step.Logits, pos+1
		return false, nil
	})
}

func (s *staged) stats(pre sdtp.PrefillResult, n int) *SDTPStats {
	pruned := sdtp.LivePerLayer(s.sched, len(s.shape.Layers), pre.LivePositions)
	return &SDTPStats{
		Mode:         s.mode,
		KeptPerStage: pre.KeptPerStage,
		KeptPerLayer: pre.KeptPerLayer,
		FLOPRatio:    sdtp.DenseFLOPs(s.shape, n) / sdtp.PrefillFLOPs(s.shape, pruned),
		KVBytes:      s.engine.KVBytes(),
		KVPolicy:     s.kv.Policy(),
		KVLimit:      s.kv.Limit(),
		KVPeakBytes:  s.engine.KVBytes(),
		DroppedAt:    pre.DroppedAt,
		Schedule:     s.sched,
	}
}
