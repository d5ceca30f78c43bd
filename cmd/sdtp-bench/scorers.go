package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/gguf"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/predictors"
	"github.com/go-sdtp/sdtp/sdtp"
)

// loadLearned loads the learned predictors where the library finds them
// (predictors.Locate): --predictors, heads inside the GGUF,
// MODEL.predictors/, or the shipped set for the model. An ONNX set runs
// both through ONNX Runtime and as in-graph heads.
func (b *bench) loadLearned() error {
	src, err := predictors.Locate(b.cfg.predictors, predictors.Model{Path: b.cfg.model, Arch: b.model.Arch(), NLayer: b.model.NLayer(), NEmbd: b.model.NEmbd()})
	if err != nil {
		return err
	}
	b.cfg.predictors, b.learnedFrom = src.Dir, src.From
	h := src.Heads
	if src.Kind == predictors.ScorerONNX {
		if b.predictorHash, err = hashPredictors(b.cfg.predictors); err != nil {
			return err
		}
		if b.onnxSet, err = onnx.LoadFor(b.cfg.predictors, b.cfg.model, b.model.Arch(), b.model.NLayer(), b.model.NEmbd(), onnx.Options{Provider: b.cfg.onnxProvider}); err != nil {
			return err
		}
		if h, err = gguf.FromONNX(b.onnxSet); err != nil {
			return err
		}
	}
	if h != nil {
		b.learnedSched = h.Schedule()
		if b.heads, err = h.Scorer(b.engine); err != nil {
			return err
		}
	}
	for _, m := range b.cfg.modes {
		if (m == "sdtp-onnx" && b.onnxSet == nil) || ((m == "sdtp-gguf" || m == "hybrid" || m == "learned") && b.heads == nil) {
			return fmt.Errorf("mode %s needs learned predictors: --predictors DIR (or heads inside the GGUF for sdtp-gguf, learned and hybrid)", m)
		}
	}
	if h != nil && (slices.Contains(b.cfg.modes, "hybrid") || slices.Contains(b.cfg.modes, "sdtp")) {
		var learned sdtp.Scorer = b.heads
		if b.onnxSet != nil {
			learned = b.onnxSet
		}
		f := predictor.DefaultFusion(len(h.Layers))
		if h.Fusion != nil {
			f = *h.Fusion
		} else {
			fmt.Fprintln(b.log, predictor.DefaultFusionNote())
		}
		if b.hybrid, err = predictor.NewHybrid(learned, h.Layers, f); err != nil {
			return err
		}
	}
	return nil
}

// sdtpMode describes what mode sdtp runs (report.Run.SDTPScorer): its
// scorer, and its schedule when the preset is not the paper's default.
func (b *bench) sdtpMode(paper sdtp.Schedule, nLayer int) string {
	scorer := "question attention alone (no learned predictors for this model)"
	base := paper
	if b.heads != nil {
		scorer = b.sdtpScorer() + ", fused with the question attention"
		base = b.learnedSched
	}
	if b.cfg.preset("sdtp") != sdtp.ScheduleRetrieval {
		return scorer
	}
	s, err := sdtp.Preset(sdtp.ScheduleRetrieval, base, nLayer)
	if err != nil {
		return scorer // variants() has reported it
	}
	trail := fmt.Sprint(s.SpanTrail)
	if s.SpanTrailSentence {
		trail += " (to the sentence's end)"
	}
	echo := fmt.Sprint(s.SpanEcho)
	if s.SpanEchoFirst {
		echo += " ranked first"
	}
	sentences := ""
	if s.SpanSentences {
		sentences = fmt.Sprintf(", whole sentences of at most %d tokens when the prompt asks a question", sdtp.EchoHopMaxSentence)
	}
	return fmt.Sprintf("%s, at the retrieval schedule: keep %.3f before layer %d, span %d, trail %s, echo %s, %d echo hops (further links within 1/%d of the prompt)%s",
		scorer, s.KeepRatios[0], s.Layers[0], s.SpanKernel, trail, echo, s.SpanEchoHops, sdtp.EchoHopMaxShare, sentences)
}

// sdtpScorer says which learned predictors the learned modes prune with.
func (b *bench) sdtpScorer() string {
	switch {
	case b.onnxSet != nil:
		return fmt.Sprintf("learned predictors %s, %s (ONNX Runtime, %s)", b.learnedFrom, b.cfg.predictors, b.cfg.onnxProvider)
	case b.heads != nil:
		return "learned predictor heads inside the GGUF"
	}
	return "question attention alone (no learned predictors for this model)"
}

// scorerName names what prunes in a mode, as llama.SDTPStats.Scorer does
// (report.Row.Scorer): "" for the unpruned modes.
func (b *bench) scorerName(mode string) string {
	switch {
	case mode == "llamacpp" || mode == "dense":
		return ""
	case mode == "sdtp-onnx" || (mode == "learned" && b.onnxSet != nil):
		return predictors.ScorerONNX
	case mode == "sdtp-gguf" || mode == "learned":
		return predictors.ScorerGGUFHeads
	case mode == "random", strings.HasPrefix(mode, "attention-acc"):
		return mode
	case (mode == "hybrid" || mode == "sdtp") && b.onnxSet != nil:
		return "hybrid/" + predictors.ScorerONNX
	case mode == "hybrid" || (mode == "sdtp" && b.heads != nil):
		return "hybrid/" + predictors.ScorerGGUFHeads
	case mode == "sdtp":
		return "attention-acc"
	case mode == modeOracle:
		return "attention-acc of the continuation"
	}
	return "attention"
}

// scorer returns a fresh scorer for a mode (the random one restarts from
// its seed, so every run and window drops the same draw).
func (b *bench) scorer(mode string) sdtp.Scorer {
	switch {
	case mode == "sdtp-onnx" || (mode == "learned" && b.onnxSet != nil):
		return &timed{Scorer: b.onnxSet}
	case mode == "sdtp-gguf" || mode == "learned":
		return b.heads
	case mode == "random":
		return predictor.NewRandom(1)
	case mode == "dense":
		return predictor.NewRandom(0) // never called: nothing is pruned
	case mode == "hybrid" || (mode == "sdtp" && b.hybrid != nil):
		return &timed{Scorer: b.hybrid}
	case mode == "sdtp" || strings.HasPrefix(mode, "attention-acc"):
		name := mode
		if mode == "sdtp" {
			name = "attention-acc" // sdtp without learned predictors
		}
		sc, err := predictor.New(name, 0)
		if err != nil {
			panic(err) // the names are registered by package predictor
		}
		return &timed{Scorer: sc}
	}
	return predictor.Attention{}
}

// timed measures the time a scorer spends scoring in Go (and ONNX
// Runtime); work the scorer asks of the graph (in-graph heads, layer
// attention) shows in the prefill time instead.
type timed struct {
	sdtp.Scorer
	spent time.Duration
	total *timed // where a per-prefill scorer's time adds up (ForPrefill)
}

func (t *timed) Score(in sdtp.ScoreInput) ([]float32, error) {
	start := time.Now()
	defer func() {
		sum := t
		if t.total != nil {
			sum = t.total
		}
		sum.spent += time.Since(start)
	}()
	return t.Scorer.Score(in)
}

// ForPrefill times the per-prefill scorer of a sdtp.PrefillScorer.
func (t *timed) ForPrefill(nPrompt int) sdtp.Scorer {
	if p, ok := t.Scorer.(sdtp.PrefillScorer); ok {
		return &timed{Scorer: p.ForPrefill(nPrompt), total: t}
	}
	return t
}

// headCost times the in-graph heads where they run, in a separate prefill
// (the pauses that timing needs would slow the timed one).
func (b *bench) headCost(sched sdtp.Schedule, prompt []int32) (time.Duration, error) {
	b.engine.TimeHeads(true)
	defer b.engine.TimeHeads(false)
	b.engine.HeadTime()
	if _, err := sdtp.Prefill(context.Background(), b.engine, b.heads, sched, prompt, 512); err != nil {
		return 0, err
	}
	return b.engine.HeadTime(), nil
}
