package llama

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/predictors"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Prefill modes. ModeLlamaCpp, the default, is stock llama_decode: exactly
// go-llama.cpp's behaviour. The others run the staged engine.
const (
	ModeLlamaCpp = "llamacpp"
	ModeDense    = "dense" // staged engine, nothing pruned
	// ModeSDTP is retrieval-safe SDTP: learned predictors fused with the
	// question attention (as ModeHybrid; ModeAttentionAcc for a model
	// without predictors) at the retrieval schedule
	// (sdtp.RetrievalSchedule: one cut at 0.4 of the depth, with spans).
	ModeSDTP = "sdtp"
	// ModeLearned prunes by the learned predictors alone (the paper's
	// SDTP, and what mode sdtp was before issue 16), at the paper's
	// schedule by default.
	ModeLearned   = "learned"
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

// stagedModes and pruningModes list the modes that run the staged engine
// and those that prune, for messages.
const (
	stagedModes  = "dense, " + pruningModes
	pruningModes = "sdtp, learned, random, attention, attention-acc, hybrid"
)

// SDTPOptions turn on Saliency-driven Dynamic Token Pruning.
type SDTPOptions struct {
	Mode string // one of the Mode constants; "" = ModeLlamaCpp
	// Schedule names the schedule preset: sdtp.SchedulePaper (10 stages
	// × 0.9 from layer nLayer/8, or learned predictors' trained schedule;
	// no spans) or sdtp.ScheduleRetrieval (the same prefill work in one
	// cut at 0.4 of the depth, span kernel 7, trail 48:
	// sdtp.RetrievalSchedule).
	// "" = retrieval in mode sdtp, paper in the other pruning modes.
	// Layers, KeepRatio, SpanKernel and SpanTrail replace its parts.
	Schedule string
	// KeepRatio is the fraction of live tokens each stage keeps, in
	// (0, 1]. 0 = unset: the preset's ratios. (A command that lets a user
	// type 0 must refuse it.)
	KeepRatio float64
	// Layers are the pruning layers; nil = the preset's. With learned
	// predictors every layer must be one they were trained for (they are
	// then used at a subset).
	Layers []int
	// Predictors is a directory with predictors.json + ONNX files; "" =
	// heads in the GGUF, MODEL.predictors/, or the shipped set for the model.
	Predictors string
	Seed       uint64 // for the random scorer
	UBatch     int    // tokens per graph in prefill; 0 = 512
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
	// SpecPrefill 13), so kept tokens come in spans. 0 = the preset's
	// (retrieval 7, paper none); −1 = none. Pruning modes only.
	SpanKernel int
	// SpanTrail > 0 lends each token's score to that many following live
	// tokens (sdtp.PoolSpans), so a fact's value survives with the words
	// that lead to it; under the retrieval preset a trail also stops at
	// the end of its token's sentence (sdtp.EndsSentence). 0 = the
	// preset's (retrieval 48, paper none); −1 = none. Pruning modes only.
	SpanTrail int
	// SpanTrailEnd says whether trails also stop at the end of their
	// token's sentence: TrailEndSentence (a token holding '.', '!', '?'
	// or a newline ends the trail, itself included; sdtp.EndsSentence) or
	// TrailEndOpen (only the trail's length). "" = the preset's
	// (retrieval: sentence; paper: open). Refused where no trail runs.
	SpanTrailEnd string
	// SpanEcho > 1 gives the live tokens that end the same run of SpanEcho
	// tokens, a run the question (the prompt's last sdtp.EchoWindow
	// tokens) repeats, their best score (sdtp.ShareEchoes), so every copy
	// of an asked-about phrase survives. 0 = the preset's (retrieval 5,
	// paper none); −1 = none. Pruning modes only.
	SpanEcho int
	// SpanEchoHops > 0 follows the facts that hold an echo through up to
	// that many further facts sharing a rare name with them, and keeps
	// each fact of such a chain whole (sdtp.ChainEchoes). 0 = the
	// preset's (retrieval 3, paper none); −1 = none. Needs an echo.
	SpanEchoHops int
	// SpanEchoRank says where the tokens that end an echo rank:
	// EchoRankFirst (above every other token, sdtp.EchoesFirst) or
	// EchoRankShared (at the best copy's score only). "" = the preset's
	// (retrieval: first; paper: shared). Refused where no echo runs.
	SpanEchoRank string
	// SpanSentences says what the cut keeps: SentencesWhole (each sentence
	// of at most sdtp.EchoHopMaxSentence tokens whole or not at all, at
	// its best token's score, sdtp.PoolSentences, in a prompt whose last
	// tokens ask a question, sdtp.AsksQuestion) or SentencesTokens
	// (token by token). "" = the preset's (retrieval: whole; paper:
	// tokens). Pruning modes only.
	SpanSentences string
}

// Values of SDTPOptions.SpanEchoRank.
const (
	EchoRankFirst  = "first"  // echoes rank above every other token
	EchoRankShared = "shared" // echoes take the best copy's score
)

// Values of SDTPOptions.SpanSentences.
const (
	SentencesWhole  = "whole"  // sentences are kept or dropped whole
	SentencesTokens = "tokens" // tokens are kept one by one
)

// Values of SDTPOptions.SpanTrailEnd.
const (
	TrailEndSentence = "sentence" // a trail stops at the end of its token's sentence
	TrailEndOpen     = "open"     // a trail runs its whole length
)

// WithSDTP enables a pruning mode (an addition to go-llama.cpp's options).
func WithSDTP(o SDTPOptions) ModelOption { return func(p *ModelOptions) { p.SDTP = o } }

// SDTPStats describes one staged generation: its prefill and KV caches.
// With prefix reuse (Result.ReusedTokens > 0) the prefill covers only the
// prompt's new tokens: KeptPerStage and FLOPRatio describe those, while
// KeptPerLayer, DroppedAt and Pieces cover the whole prompt.
type SDTPStats struct {
	Mode string
	// Scorer is the scorer that ran (CONTRACTS §3): "onnx" (learned, ONNX
	// Runtime), "gguf-heads" (learned, in-graph), "attention", "random",
	// or "" in mode dense. Mode sdtp without learned predictors for the
	// model runs "attention".
	Scorer       string
	KeptPerStage []int    // live tokens entering each stage (of the tokens prefilled by this call)
	KeptPerLayer []int    // K/V entries per layer after the prefill, reused ones included
	FLOPRatio    float64  // prefill FLOPs of this call's new tokens (attending to the reused cells included), dense / this mode
	KVBytes      int64    // after the prefill (and the KV policy's first eviction)
	KVPolicy     string   // sdtp.KVNone unless SDTPOptions.KVPolicy
	KVLimit      int      // cells per layer the policy allows (0: no limit)
	KVPeakBytes  int64    // the most the caches held after any step of the generation
	DroppedAt    []int    // per prompt position: stage that dropped it (0 = kept)
	Pieces       []string // per prompt position: the token's bytes, maybe part of a character (PromptSpans groups them)
	Schedule     sdtp.Schedule
}

// staged is the engine state of a *LLama in a staged mode.
type staged struct {
	engine     *bridge.Engine
	scorer     sdtp.Scorer
	scorerName string // SDTPStats.Scorer
	sched      sdtp.Schedule
	shape      sdtp.Shape
	mode       string
	ubatch     int
	kv         *sdtp.KVLimiter
	// tokens are the tokens the caches have seen, index = position: the
	// prompts and the generated tokens fed back, as the last call left
	// them (each layer holds the subset pruning and the KV policy kept).
	// dropped[p] is the stage that dropped position p (0: kept).
	tokens  []int32
	dropped []int
}

// newStaged prepares the engine for o.Mode, or returns nil for llama.cpp's
// own path: mode llamacpp, or mode dense on an architecture the engine does
// not stage (llama_decode computes the same thing). A pruning mode on such
// an architecture is ErrUnsupportedArch.
func newStaged(path string, m *bridge.Model, c *bridge.Context, o SDTPOptions, lora bool) (*staged, error) {
	mode := o.Mode
	if _, err := sdtp.NewKVLimiter(nil, o.KVPolicy, o.KVBudget); err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	kvPolicy := o.KVPolicy != "" && o.KVPolicy != sdtp.KVNone
	switch mode {
	case "", ModeLlamaCpp, ModeDense, ModeSDTP, ModeLearned, ModeRandom, ModeAttention, ModeAttentionAcc, ModeHybrid:
	default:
		return nil, fmt.Errorf("llama: unknown SDTP mode %q (llamacpp, %s)", mode, stagedModes)
	}
	if err := o.refuseUnused(lora); err != nil {
		return nil, err
	}
	if err := o.validateSchedule(); err != nil {
		return nil, err
	}
	if mode == "" || mode == ModeLlamaCpp {
		if kvPolicy {
			return nil, fmt.Errorf("llama: KV policy %s needs a staged mode (%s)", o.KVPolicy, stagedModes)
		}
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
	if s.ubatch == 0 {
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

// refuseUnused refuses settings that the mode would ignore: pruning
// settings outside the pruning modes, predictors outside mode sdtp, and a
// LoRA adapter in the staged modes (the staged graphs read the base
// weights only).
func (o SDTPOptions) refuseUnused(lora bool) error {
	pruning := Prunes(o.Mode)
	staged := pruning || o.Mode == ModeDense
	mode := cmp.Or(o.Mode, ModeLlamaCpp)
	switch {
	case o.UBatch < 0:
		return fmt.Errorf("llama: SDTP ubatch %d is negative (0 = 512 tokens per graph)", o.UBatch)
	case !pruning && o.KeepRatio != 0:
		return fmt.Errorf("llama: keep ratio %v given in mode %s, which prunes nothing (modes %s prune)", o.KeepRatio, mode, pruningModes)
	case !pruning && o.Layers != nil:
		return fmt.Errorf("llama: pruning layers %v given in mode %s, which prunes nothing (modes %s prune)", o.Layers, mode, pruningModes)
	case !pruning && o.SpanKernel != 0:
		return fmt.Errorf("llama: span kernel %d given in mode %s, which prunes nothing (modes %s prune)", o.SpanKernel, mode, pruningModes)
	case !pruning && o.SpanTrail != 0:
		return fmt.Errorf("llama: span trail %d given in mode %s, which prunes nothing (modes %s prune)", o.SpanTrail, mode, pruningModes)
	case !pruning && o.SpanTrailEnd != "":
		return fmt.Errorf("llama: span trail end %q given in mode %s, which prunes nothing (modes %s prune)", o.SpanTrailEnd, mode, pruningModes)
	case !pruning && o.SpanEcho != 0:
		return fmt.Errorf("llama: span echo %d given in mode %s, which prunes nothing (modes %s prune)", o.SpanEcho, mode, pruningModes)
	case !pruning && o.SpanEchoHops != 0:
		return fmt.Errorf("llama: span echo hops %d given in mode %s, which prunes nothing (modes %s prune)", o.SpanEchoHops, mode, pruningModes)
	case !pruning && o.SpanEchoRank != "":
		return fmt.Errorf("llama: span echo rank %q given in mode %s, which prunes nothing (modes %s prune)", o.SpanEchoRank, mode, pruningModes)
	case !pruning && o.SpanSentences != "":
		return fmt.Errorf("llama: span sentences %q given in mode %s, which prunes nothing (modes %s prune)", o.SpanSentences, mode, pruningModes)
	case !pruning && o.Schedule != "":
		return fmt.Errorf("llama: schedule %s given in mode %s, which prunes nothing (modes %s prune)", o.Schedule, mode, pruningModes)
	case (o.KVPolicy == "" || o.KVPolicy == sdtp.KVNone) && o.KVBudget != 0:
		return fmt.Errorf("llama: KV budget %v given without a KV policy (streaming, h2o, snapkv)", o.KVBudget)
	case o.Predictors != "" && !UsesPredictors(o.Mode):
		return fmt.Errorf("llama: predictors %s given in mode %s; learned predictors prune in modes sdtp, learned and hybrid", o.Predictors, mode)
	case !staged && o.UBatch != 0:
		return fmt.Errorf("llama: SDTP ubatch %d given in mode %s; it sizes the staged engine's graphs (llama.cpp's batch is SetNBatch)", o.UBatch, mode)
	case staged && lora:
		return fmt.Errorf("llama: LoRA adapter: %w (mode %s; the staged graphs read the base weights); use mode %s", ErrStagedUnsupported, mode, ModeLlamaCpp)
	}
	return nil
}

// Prunes says whether mode prunes prompt tokens (the pruning modes).
func Prunes(mode string) bool {
	switch mode {
	case ModeSDTP, ModeLearned, ModeRandom, ModeAttention, ModeAttentionAcc, ModeHybrid:
		return true
	}
	return false
}

// UsesPredictors says whether mode prunes with learned predictors (and so
// reads SDTPOptions.Predictors and ONNXProvider).
func UsesPredictors(mode string) bool {
	return mode == ModeSDTP || mode == ModeLearned || mode == ModeHybrid
}

// For returns o for mode, less the settings that mode does not read and New
// would refuse: the schedule's settings outside the pruning modes,
// predictors outside modes sdtp, learned and hybrid, the KV policy and ubatch
// in mode llamacpp. It carries one set of settings across modes run side
// by side (sdtp-bench --chat, sdtp-server).
func (o SDTPOptions) For(mode string) SDTPOptions {
	o.Mode = mode
	if !Prunes(mode) {
		o.Schedule, o.KeepRatio, o.Layers, o.SpanKernel, o.SpanTrail, o.SpanTrailEnd, o.SpanEcho, o.SpanEchoHops = "", 0, nil, 0, 0, "", 0, 0
		o.SpanEchoRank, o.SpanSentences = "", ""
	}
	if !UsesPredictors(mode) {
		o.Predictors, o.ONNXProvider = "", ""
	}
	if mode == "" || mode == ModeLlamaCpp {
		o.KVPolicy, o.KVBudget, o.UBatch = sdtp.KVNone, 0, 0
	}
	return o
}

// unsupported is the error for a call or option the staged engine cannot
// honour.
func (s *staged) unsupported(what string) error {
	return fmt.Errorf("llama: %s: %w (mode %s); load the model in mode %s for it", what, ErrStagedUnsupported, s.mode, ModeLlamaCpp)
}

// pickScorer sets the scorer and schedule for o.Mode. Modes sdtp, learned
// and hybrid use learned predictors, found in order: the directory
// o.Predictors, heads inside the model's GGUF, a MODEL.predictors/
// directory beside it, the shipped set trained for this model (package
// predictors). Without them mode sdtp prunes by question attention alone
// (attention-acc, saying so on stderr and in SDTPStats.Scorer); learned
// and hybrid are refused.
func (s *staged) pickScorer(path string, m *bridge.Model, o SDTPOptions) error {
	base, err := sdtp.DefaultSchedule(m.NLayer(), sdtp.DefaultKeepRatio)
	if err != nil {
		return err
	}
	learned := false
	if UsesPredictors(o.Mode) {
		sc, kind, trained, err := s.learned(path, m, o)
		if sc != nil {
			s.scorer, s.scorerName = sc, kind // closed by free, also when the schedule is refused
		}
		switch {
		case err != nil:
			return err
		case sc != nil:
			base, learned = trained, true
		case o.Mode != ModeSDTP:
			return fmt.Errorf("llama: mode %s needs learned predictors (SDTPOptions.Predictors, heads inside the GGUF, or MODEL.predictors/); mode %s prunes by question attention alone", o.Mode, ModeAttentionAcc)
		default:
			fmt.Fprintf(os.Stderr, "sdtp: no learned predictors for this model; pruning by question attention alone (%s)\n", ModeAttentionAcc)
		}
	}
	if !learned {
		name := o.Mode
		if name == ModeSDTP {
			name = ModeAttentionAcc
		}
		if s.scorer, err = predictor.New(name, o.Seed); err != nil {
			return err
		}
		s.scorerName = name
	}
	s.sched, err = o.schedule(base, m.NLayer(), learned)
	return err
}

// SchedulePreset is the schedule preset mode runs when
// SDTPOptions.Schedule is empty: retrieval in mode sdtp, paper in the
// other modes.
func SchedulePreset(mode string) string {
	if mode == ModeSDTP {
		return sdtp.ScheduleRetrieval
	}
	return sdtp.SchedulePaper
}

// preset is the schedule preset o names, or its mode's default.
func (o SDTPOptions) preset() string {
	if o.Schedule != "" {
		return o.Schedule
	}
	return SchedulePreset(o.Mode)
}

// validateSchedule checks the schedule settings that need no model.
func (o SDTPOptions) validateSchedule() error {
	switch {
	case o.Schedule != "" && sdtp.ValidatePreset(o.Schedule) != nil:
		return fmt.Errorf("llama: %w", sdtp.ValidatePreset(o.Schedule))
	case o.SpanKernel != -1 && sdtp.ValidateSpanKernel(o.SpanKernel) != nil:
		return fmt.Errorf("llama: %w, or -1 for none", sdtp.ValidateSpanKernel(o.SpanKernel))
	case o.SpanTrail < -1:
		return fmt.Errorf("llama: span trail %d must be 0 (the schedule's), -1 (none) or a number of following tokens", o.SpanTrail)
	case o.SpanTrailEnd != "" && o.SpanTrailEnd != TrailEndSentence && o.SpanTrailEnd != TrailEndOpen:
		return fmt.Errorf("llama: span trail end %q: want %q, %q or \"\" (the schedule's)", o.SpanTrailEnd, TrailEndSentence, TrailEndOpen)
	case o.SpanEcho != -1 && sdtp.ValidateSpanEcho(o.SpanEcho) != nil:
		return fmt.Errorf("llama: %w, or -1 for none", sdtp.ValidateSpanEcho(o.SpanEcho))
	case o.SpanEchoHops < -1:
		return fmt.Errorf("llama: span echo hops %d must be 0 (the schedule's), -1 (none) or a number of links", o.SpanEchoHops)
	case o.SpanEchoRank != "" && o.SpanEchoRank != EchoRankFirst && o.SpanEchoRank != EchoRankShared:
		return fmt.Errorf("llama: span echo rank %q: want %q, %q or \"\" (the schedule's)", o.SpanEchoRank, EchoRankFirst, EchoRankShared)
	case o.SpanSentences != "" && o.SpanSentences != SentencesWhole && o.SpanSentences != SentencesTokens:
		return fmt.Errorf("llama: span sentences %q: want %q, %q or \"\" (the schedule's)", o.SpanSentences, SentencesWhole, SentencesTokens)
	}
	return nil
}

// schedule is o's pruning schedule over base (learned predictors' trained
// schedule, else the paper's default): the preset's stages, unless
// o.Layers or o.KeepRatio replace them (learned predictors: at a subset of
// their layers), with the preset's spans unless o.SpanKernel,
// o.SpanTrail, o.SpanTrailEnd, o.SpanEcho, o.SpanEchoHops, o.SpanEchoRank
// or o.SpanSentences replace them.
func (o SDTPOptions) schedule(base sdtp.Schedule, nLayer int, learned bool) (sdtp.Schedule, error) {
	s := base
	var err error
	switch {
	case o.Layers != nil && learned:
		if s, err = base.Subset(o.Layers); err != nil {
			return s, fmt.Errorf("llama: %w; use mode %s or %s for other layers", err, ModeAttention, ModeRandom)
		}
	case o.Layers != nil:
		s = sdtp.Uniform(o.Layers, sdtp.DefaultKeepRatio)
	default:
		if s, err = sdtp.Preset(o.preset(), base, nLayer); err != nil {
			return s, fmt.Errorf("llama: %w", err)
		}
	}
	if o.KeepRatio != 0 {
		s = sdtp.Uniform(s.Layers, o.KeepRatio)
	}
	preset := sdtp.PresetSpans(o.preset())
	s.SpanKernel = spanSetting(o.SpanKernel, preset.Kernel)
	s.SpanTrail = spanSetting(o.SpanTrail, preset.Trail)
	s.SpanTrailSentence = preset.TrailSentence
	if o.SpanTrailEnd != "" {
		if s.SpanTrail == 0 {
			return s, fmt.Errorf("llama: span trail end %q given without a trail to end (give SpanTrail, or the retrieval schedule)", o.SpanTrailEnd)
		}
		s.SpanTrailSentence = o.SpanTrailEnd == TrailEndSentence
	}
	s.SpanEchoHops, s.SpanEchoFirst = preset.EchoHops, preset.EchoFirst
	s = s.WithEcho(spanSetting(o.SpanEcho, preset.Echo)) // no echo: the preset's hops and rank go too
	if o.SpanEchoHops != 0 {
		s.SpanEchoHops = spanSetting(o.SpanEchoHops, preset.EchoHops)
	}
	if err := sdtp.ValidateEchoHops(s.SpanEchoHops, s.SpanEcho); err != nil {
		return s, fmt.Errorf("llama: %w (give SpanEcho, or the retrieval schedule)", err)
	}
	if o.SpanEchoRank != "" {
		if s.SpanEcho == 0 {
			return s, fmt.Errorf("llama: span echo rank %q given without an echo to rank (give SpanEcho, or the retrieval schedule)", o.SpanEchoRank)
		}
		s.SpanEchoFirst = o.SpanEchoRank == EchoRankFirst
	}
	s.SpanSentences = preset.Sentences
	if o.SpanSentences != "" {
		s.SpanSentences = o.SpanSentences == SentencesWhole
	}
	return s, s.Validate(nLayer)
}

// spanSetting reads a span option: 0 keeps the preset's value, −1 is none.
func spanSetting(given, preset int) int {
	switch given {
	case 0:
		return preset
	case -1:
		return 0
	}
	return given
}

// Scorer kinds of the learned predictors (SDTPStats.Scorer).
const (
	ScorerONNX      = predictors.ScorerONNX      // ONNX Runtime predictors
	ScorerGGUFHeads = predictors.ScorerGGUFHeads // heads inside the model's GGUF, in-graph
)

// learned finds learned predictors for the model (predictors.Locate), or
// returns nil; in modes sdtp and hybrid, fused with the question attention
// (the kind then reads "hybrid/onnx" or "hybrid/gguf-heads").
func (s *staged) learned(path string, m *bridge.Model, o SDTPOptions) (sdtp.Scorer, string, sdtp.Schedule, error) {
	hybrid := o.Mode == ModeHybrid || o.Mode == ModeSDTP
	kind := func(k string) string {
		if hybrid {
			return ModeHybrid + "/" + k
		}
		return k
	}
	src, err := predictors.Locate(o.Predictors, predictors.Model{Path: path, Arch: m.Arch(), NLayer: m.NLayer(), NEmbd: m.NEmbd()})
	switch {
	case err != nil:
		return nil, "", sdtp.Schedule{}, err
	case src.Kind == ScorerGGUFHeads && hybrid:
		noFusion(src.Heads.Fusion == nil)
		h, err := src.Heads.Hybrid(s.engine)
		return h, kind(src.Kind), src.Heads.Schedule(), err
	case src.Kind == ScorerGGUFHeads:
		sc, err := src.Heads.Scorer(s.engine)
		return sc, src.Kind, src.Heads.Schedule(), err
	case src.Kind == ScorerONNX:
		set, err := onnx.LoadFor(src.Dir, path, m.Arch(), m.NLayer(), m.NEmbd(), onnx.Options{Provider: o.ONNXProvider})
		if err != nil {
			return nil, "", sdtp.Schedule{}, err
		}
		if !hybrid {
			return set, src.Kind, set.Manifest.Schedule(), nil
		}
		noFusion(set.Manifest.Fusion == nil)
		h, err := set.Hybrid()
		if err != nil {
			set.Close()
			return nil, "", sdtp.Schedule{}, err
		}
		return h, kind(src.Kind), set.Manifest.Schedule(), nil
	}
	return nil, "", sdtp.Schedule{}, nil
}

// noFusion says so when predictors that carry no fusion block of their own
// are fused with the question attention.
func noFusion(missing bool) {
	if missing {
		fmt.Fprintln(os.Stderr, "sdtp:", predictor.DefaultFusionNote())
	}
}

func (s *staged) free() {
	s.engine.Free()
	if c, ok := s.scorer.(interface{ Close() }); ok {
		c.Close()
	}
}

// generateStaged is Generate on the staged engine: a pruned prefill, then
// decoding over the per-layer caches. A prompt that starts with tokens the
// caches have seen (the previous prompt and the tokens generated after
// it) reuses them and prefills only the rest; see staged.reuse. The
// prompt cache file (SetPathPromptCache) holds the per-layer caches
// (staged_cache.go), read and written when mode llamacpp does.
func (l *LLama) generateStaged(ctx context.Context, toks []int32, po PredictOptions, res *Result, out *output) error {
	s := l.staged
	s.engine.SetThreads(po.Threads)
	l.resetCache() // the llama.cpp context's cache no longer matches
	start := time.Now()
	if err := s.restorePromptCache(po, toks); err != nil {
		return err
	}
	from := s.reuse(toks)
	cached := make([][]int32, s.engine.NLayer()) // for the FLOPs of attending to them
	for il := range cached {
		cached[il] = s.engine.Positions(il)
	}
	s.kv.Start()
	// PredictOptions.Batch bounds the tokens per graph as it bounds the
	// tokens per llama_decode call in mode llamacpp.
	pre, err := sdtp.Extend(ctx, s.engine, s.scorer, s.sched, toks, from, min(s.ubatch, po.Batch))
	cells := make([]int, s.engine.NLayer())
	for il := range cells {
		cells[il] = s.engine.Cells(il)
	}
	if err == nil {
		err = s.kv.Prefilled(len(toks))
	}
	res.Prefill = time.Since(start)
	res.PromptTokens = len(toks)
	res.ReusedTokens = from
	if err != nil {
		s.engine.Remove(from, -1) // back to the reused prefix
		return err
	}
	s.tokens = append(s.tokens, toks[from:]...)
	s.dropped = append(s.dropped, pre.DroppedAt...)
	if err := s.savePromptCache(po, true); err != nil {
		return err
	}
	res.SDTP = s.stats(pre, cached, from, len(toks)-from)
	res.SDTP.KeptPerLayer = cells
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
	logits := pre.Logits
	sample := func() (int32, error) { return smp.SampleLogits(logits) }
	err = l.loop(ctx, po, res, out, sample, func(tok int32) (bool, error) {
		if len(s.tokens) >= l.ctx.NCtx() {
			if po.Tokens == 0 {
				return true, nil // "until EOS": the window bounds the output
			}
			if err := s.shift(po.NKeep, len(toks)); err != nil {
				return true, err
			}
		}
		pos := len(s.tokens)
		step, err := s.engine.Run(bridge.RunInput{First: 0, Last: s.engine.NLayer(), Tokens: []int32{tok}, Positions: []int32{int32(pos)}, WantLogits: true})
		if err != nil {
			return true, err // nothing was appended
		}
		s.tokens, s.dropped = append(s.tokens, tok), append(s.dropped, 0)
		if err := s.kv.Enforce(); err != nil {
			return true, err
		}
		st.KVPeakBytes = max(st.KVPeakBytes, s.engine.KVBytes())
		logits = step.Logits
		return false, nil
	})
	if err == nil {
		err = s.savePromptCache(po, po.PromptCacheAll)
	}
	return err
}

// reuse keeps the longest prefix of toks the caches hold, short of the
// last token (re-run for its logits), drops every layer's cells past it,
// and returns its length: the position the prefill starts from. The
// schedule is fixed per *LLama, so the cached stages line up with the new
// prefill's.
func (s *staged) reuse(toks []int32) int {
	n := min(commonPrefix(s.tokens, toks), len(toks)-1)
	if n < len(s.tokens) {
		s.engine.Remove(n, -1)
		s.tokens, s.dropped = s.tokens[:n], s.dropped[:n]
	}
	return n
}

// shift makes room when generation fills the window, as mode llamacpp
// does (shiftContext): keep the first NKeep prompt tokens, drop half of
// the rest from every layer, and move the remainder down, re-rotating
// their cached keys.
func (s *staged) shift(nKeep, promptLen int) error {
	keep := nKeep
	if keep < 0 || keep > promptLen {
		keep = promptLen
	}
	keep = max(keep, 1) // never drop BOS
	discard := (len(s.tokens) - keep) / 2
	if discard == 0 {
		return fmt.Errorf("%w: %d tokens and nothing to drop after NKeep %d", ErrContextFull, len(s.tokens), keep)
	}
	s.engine.Remove(keep, keep+discard)
	if err := s.engine.Shift(keep+discard, -discard); err != nil {
		s.engine.Remove(0, -1) // keys half-rotated: start the next call afresh
		s.tokens, s.dropped = nil, nil
		return fmt.Errorf("llama: context shift: %w", err)
	}
	s.tokens = append(s.tokens[:keep], s.tokens[keep+discard:]...)
	s.dropped = append(s.dropped[:keep], s.dropped[keep+discard:]...)
	return nil
}

// stats describes a prefill of n new tokens after from reused ones, over
// caches that held cached; DroppedAt covers s.tokens.
func (s *staged) stats(pre sdtp.PrefillResult, cached [][]int32, from, n int) *SDTPStats {
	pruned := sdtp.LivePerLayer(s.sched, len(s.shape.Layers), pre.LivePositions)
	return &SDTPStats{
		Mode:         s.mode,
		Scorer:       s.scorerName,
		KeptPerStage: pre.KeptPerStage,
		KeptPerLayer: pre.KeptPerLayer,
		FLOPRatio:    sdtp.DenseExtendFLOPs(s.shape, from, n) / sdtp.ExtendFLOPs(s.shape, cached, pruned),
		KVBytes:      s.engine.KVBytes(),
		KVPolicy:     s.kv.Policy(),
		KVLimit:      s.kv.Limit(),
		KVPeakBytes:  s.engine.KVBytes(),
		DroppedAt:    append([]int(nil), s.dropped...),
		Schedule:     s.sched,
	}
}
