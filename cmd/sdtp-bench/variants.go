package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sdtp/sdtp/internal/report"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

// variant is one mode at one schedule: one row per prompt length.
type variant struct {
	mode  string
	sched sdtp.Schedule // none for llamacpp and dense
	// custom: the layers come from --prune-layers, not from the mode (the
	// default schedule, or the layers learned predictors were trained for).
	custom bool
	// byDefault: the schedule the mode runs without sweep flags.
	byDefault bool
	kv        string  // KV policy after the prefill (sdtp.KVNone: none)
	kvBudget  float64 // its budget
	scorer    string  // what prunes (report.Row.Scorer)
	// shape names a --same-work schedule ("tilt0.5", "from9"), a mode of
	// its own in reports.
	shape string
	// presetSpans: the spans of the mode's preset; the row names spans
	// other than these.
	presetSpans sdtp.Spans
}

// row starts a result row for the variant.
func (v variant) row(promptTokens int) report.Row {
	r := report.Row{Mode: v.mode, PromptTokens: promptTokens, KeepRatio: 1, PruneLayers: v.sched.Layers,
		CustomLayers: v.custom, DefaultSchedule: v.byDefault, Scorer: v.scorer}
	if v.shape != "" {
		r.Mode += "+" + v.shape
	}
	// What spans other than the preset's do, beside the same mode with them.
	if v.sched.SpanKernel != v.presetSpans.Kernel {
		r.Mode += fmt.Sprintf("+span%d", v.sched.SpanKernel)
	}
	if v.sched.SpanTrail != v.presetSpans.Trail {
		r.Mode += fmt.Sprintf("+trail%d", v.sched.SpanTrail)
	}
	if v.sched.SpanTrailSentence != v.presetSpans.TrailSentence {
		r.Mode += map[bool]string{true: "+sentence", false: "+open"}[v.sched.SpanTrailSentence]
	}
	if v.sched.SpanEcho != v.presetSpans.Echo {
		r.Mode += fmt.Sprintf("+echo%d", v.sched.SpanEcho)
	}
	if v.sched.SpanEchoHops != v.presetSpans.EchoHops {
		r.Mode += fmt.Sprintf("+hops%d", v.sched.SpanEchoHops)
	}
	if v.sched.SpanEchoFirst != v.presetSpans.EchoFirst {
		r.Mode += map[bool]string{true: "+echofirst", false: "+echoshared"}[v.sched.SpanEchoFirst]
	}
	if v.sched.SpanSentences != v.presetSpans.Sentences {
		r.Mode += map[bool]string{true: "+sentences", false: "+tokens"}[v.sched.SpanSentences]
	}
	if v.kv != sdtp.KVNone {
		// A mode of its own in reports and plots: "attention+h2o" is
		// neither attention nor, for dense, the unpruned reference.
		r.Mode += "+" + v.kv
		r.KVPolicy, r.KVBudget = v.kv, v.kvBudget
	}
	if len(v.sched.KeepRatios) > 0 {
		r.KeepRatio = v.sched.KeepRatios[0]
		for _, k := range v.sched.KeepRatios {
			if k != r.KeepRatio {
				r.KeepRatio = 0 // trained per-stage ratios that differ
			}
		}
	}
	return r
}

func (v variant) String() string {
	s := v.mode
	if len(v.sched.Layers) > 0 {
		s += fmt.Sprintf(" (layers %v, keep %v)", v.sched.Layers, v.sched.KeepRatios)
	}
	if v.sched.SpanKernel > 0 {
		s += fmt.Sprintf(" span %d", v.sched.SpanKernel)
	}
	if v.sched.SpanTrail > 0 {
		s += fmt.Sprintf(" trail %d", v.sched.SpanTrail)
		if v.sched.SpanTrailSentence {
			s += " to sentence end"
		}
	}
	if v.sched.SpanEcho > 0 {
		s += fmt.Sprintf(" echo %d", v.sched.SpanEcho)
	}
	if v.sched.SpanEchoHops > 0 {
		// The cap is named so that records of the uncapped hops (before
		// sdtp.EchoHopMaxShare) are not taken for this variant's.
		s += fmt.Sprintf(" hops %d within 1/%d", v.sched.SpanEchoHops, sdtp.EchoHopMaxShare)
	}
	if v.sched.SpanEchoFirst {
		s += " echoes first"
	}
	if v.sched.SpanSentences {
		// "asked": records of whole sentences in every prompt (before
		// sdtp.AsksQuestion) are not taken for this variant's.
		s += fmt.Sprintf(" whole sentences of at most %d when asked", sdtp.EchoHopMaxSentence)
	}
	if v.kv != sdtp.KVNone {
		s += fmt.Sprintf(" + %s at %v", v.kv, v.kvBudget)
	}
	return s
}

// withKV expands variants over the --kv-policy list; llamacpp runs only
// without a policy (llama.cpp's own cache).
func withKV(vars []variant, policies []string, budget float64) []variant {
	var out []variant
	for _, v := range vars {
		for _, p := range policies {
			if p != sdtp.KVNone && v.mode == "llamacpp" {
				continue
			}
			v.kv, v.kvBudget = p, budget
			out = append(out, v)
		}
	}
	return out
}

// variants expands --modes over the sweeps: llamacpp and dense once; the
// training-free scorers at every --prune-layers list × --keep-ratios
// value; learned predictors at their trained layers ("default") or the
// subset a --prune-layers list names, at their trained ratios unless
// --keep-ratios is given.
func (b *bench) variants(nLayer int) ([]variant, error) {
	var out []variant
	for _, mode := range b.cfg.modes {
		switch {
		case mode == "llamacpp" || mode == "dense":
			out = append(out, variant{mode: mode, byDefault: true})
		case b.learned(mode):
			def, err := b.presetSchedule(mode, b.learnedSched, nLayer)
			if err != nil {
				return nil, err
			}
			for _, layers := range b.cfg.pruneLayers {
				trained := def
				if layers != nil {
					if trained, err = b.learnedSched.Subset(layers); err != nil {
						return nil, fmt.Errorf("--prune-layers %v with mode %s: %w", layers, mode, err)
					}
				}
				// The default only when it is def: layers naming the
				// retrieval schedule's stages still run at the trained ratios.
				full := layers == nil || (slices.Equal(trained.Layers, def.Layers) && slices.Equal(trained.KeepRatios, def.KeepRatios))
				if !b.cfg.keepRatiosSet {
					out = append(out, variant{mode: mode, sched: trained, custom: !full, byDefault: full})
					continue
				}
				for _, k := range b.cfg.keepRatios {
					s := sdtp.Uniform(trained.Layers, k)
					out = append(out, variant{mode: mode, sched: s, custom: !full, byDefault: full && slices.Equal(s.KeepRatios, def.KeepRatios)})
				}
			}
		default:
			paper, err := sdtp.DefaultSchedule(nLayer, sdtp.DefaultKeepRatio)
			if err != nil {
				return nil, err
			}
			def, err := b.presetSchedule(mode, paper, nLayer)
			if err != nil {
				return nil, err
			}
			for _, layers := range b.cfg.pruneLayers {
				for _, k := range b.cfg.keepRatios {
					v := variant{mode: mode, custom: layers != nil}
					if layers == nil {
						v.sched = def
						if b.cfg.keepRatiosSet {
							v.sched = sdtp.Uniform(def.Layers, k)
						}
						v.byDefault = slices.Equal(v.sched.KeepRatios, def.KeepRatios)
					} else {
						v.sched = sdtp.Uniform(layers, k)
						if err := v.sched.Validate(nLayer); err != nil {
							return nil, fmt.Errorf("--prune-layers %v: %w", layers, err)
						}
					}
					out = append(out, v)
				}
			}
		}
	}
	more, err := b.sameWorkVariants(nLayer)
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	for i := range out {
		v := &out[i]
		v.scorer = b.scorerName(v.mode)
		if len(v.sched.Layers) == 0 {
			continue
		}
		v.presetSpans = sdtp.PresetSpans(b.cfg.preset(v.mode))
		v.sched = v.sched.WithSpans(v.presetSpans)
		if b.cfg.spanSet {
			v.sched.SpanKernel = b.cfg.span
		}
		if b.cfg.spanTrailSet {
			v.sched.SpanTrail = b.cfg.spanTrail
		}
		if b.cfg.spanEchoSet {
			v.sched = v.sched.WithEcho(b.cfg.spanEcho) // no echo: the preset's hops and rank go too
		}
		if b.cfg.spanEchoHopsSet {
			v.sched.SpanEchoHops = b.cfg.spanEchoHops
		}
		if err := sdtp.ValidateEchoHops(v.sched.SpanEchoHops, v.sched.SpanEcho); err != nil {
			return nil, fmt.Errorf("mode %s: %w (give --span-echo, or --schedule retrieval)", v.mode, err)
		}
		if b.cfg.spanEchoFirstSet {
			if b.cfg.spanEchoFirst && v.sched.SpanEcho == 0 {
				return nil, fmt.Errorf("--span-echo-first: mode %s has no echo to rank first (give --span-echo or --schedule retrieval)", v.mode)
			}
			v.sched.SpanEchoFirst = b.cfg.spanEchoFirst
		}
		if b.cfg.spanSentencesSet {
			v.sched.SpanSentences = b.cfg.spanSentences
		}
		if b.cfg.spanTrailSentenceSet {
			if b.cfg.spanTrailSentence && v.sched.SpanTrail == 0 {
				return nil, fmt.Errorf("--span-trail-sentence: mode %s has no trail to stop (give --span-trail or --schedule retrieval)", v.mode)
			}
			v.sched.SpanTrailSentence = b.cfg.spanTrailSentence
		}
	}
	return withKV(out, b.cfg.kvPolicies, b.cfg.kvBudget), nil
}

// preset is the schedule preset of mode: --schedule, else the library's
// default for the mode (llama.SchedulePreset).
func (c config) preset(mode string) string {
	if c.schedule != "" {
		return c.schedule
	}
	return llama.SchedulePreset(mode)
}

// presetSchedule is base (the paper's default, or learned predictors'
// trained schedule) under mode's preset.
func (b *bench) presetSchedule(mode string, base sdtp.Schedule, nLayer int) (sdtp.Schedule, error) {
	s, err := sdtp.Preset(b.cfg.preset(mode), base, nLayer)
	if err != nil {
		return s, fmt.Errorf("mode %s: %w", mode, err)
	}
	return s, nil
}

// learned says whether the mode prunes with learned predictors.
func (b *bench) learned(mode string) bool {
	return mode == "sdtp-onnx" || mode == "sdtp-gguf" || mode == "hybrid" || mode == "learned" || (mode == "sdtp" && b.heads != nil)
}

// parsePruneLayers reads --prune-layers values: each holds one or more
// ';'-separated lists, "default" (nil) or layer numbers like "3,6,9".
func parsePruneLayers(values []string) ([][]int, error) {
	var out [][]int
	for _, v := range values {
		for _, list := range strings.Split(v, ";") {
			list = strings.TrimSpace(list)
			if list == "default" {
				out = append(out, nil)
				continue
			}
			var layers []int
			for _, f := range strings.Split(list, ",") {
				l, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil {
					return nil, fmt.Errorf("--prune-layers %q: %q is not a layer number", list, f)
				}
				layers = append(layers, l)
			}
			out = append(out, layers)
		}
	}
	return out, nil
}

// sameWorkSpec is one --same-work schedule: the mode's default layers from
// layer from on (only the first stages of them when stages > 0), keep
// ratios tilted toward later stages by tilt, at the default schedule's
// prefill work (sdtp.SameWork). from=L,stages=1 is one cut at layer L, as
// FastKV and GemFilter decide once at a middle layer.
type sameWorkSpec struct {
	from   int
	tilt   float64
	stages int
}

func (s sameWorkSpec) String() string {
	var parts []string
	if s.from > 0 {
		parts = append(parts, fmt.Sprintf("from%d", s.from))
	}
	if s.stages > 0 {
		parts = append(parts, fmt.Sprintf("stages%d", s.stages))
	}
	if s.tilt > 0 || (s.from == 0 && s.stages == 0) {
		parts = append(parts, fmt.Sprintf("tilt%g", s.tilt))
	}
	return strings.Join(parts, "")
}

// parseSameWork reads --same-work values: ';'-separated specs, each
// a ','-separated set of "tilt=T", "from=L" and "stages=N".
func parseSameWork(values []string) ([]sameWorkSpec, error) {
	var out []sameWorkSpec
	for _, v := range values {
		for _, spec := range strings.Split(v, ";") {
			var sw sameWorkSpec
			seen := map[string]bool{}
			for _, kv := range strings.Split(spec, ",") {
				k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				var err error
				switch {
				case !ok || seen[k]:
					err = errors.New("want tilt=T, from=L, stages=N, or several of them separated by ','")
				case k == "tilt":
					sw.tilt, err = strconv.ParseFloat(val, 64)
					if err == nil && !(sw.tilt >= 0 && sw.tilt < 1) {
						err = fmt.Errorf("tilt %v must be in [0, 1)", sw.tilt)
					}
				case k == "from":
					sw.from, err = strconv.Atoi(val)
					if err == nil && sw.from < 1 {
						err = fmt.Errorf("from %d must be a layer after the first", sw.from)
					}
				case k == "stages":
					sw.stages, err = strconv.Atoi(val)
					if err == nil && sw.stages < 1 {
						err = fmt.Errorf("stages %d must be at least 1", sw.stages)
					}
				default:
					err = fmt.Errorf("unknown key %q (tilt, from, stages)", k)
				}
				if err != nil {
					return nil, fmt.Errorf("--same-work %q: %w", spec, err)
				}
				seen[k] = true
			}
			out = append(out, sw)
		}
	}
	return out, nil
}

// sameWorkVariants are the --same-work schedules of every pruning mode:
// at the prefill work of the mode's default schedule (learned predictors:
// their trained one), over its layers from spec.from on.
func (b *bench) sameWorkVariants(nLayer int) ([]variant, error) {
	var out []variant
	for _, spec := range b.cfg.sameWork {
		for _, mode := range b.cfg.modes {
			if mode == "llamacpp" || mode == "dense" {
				continue
			}
			ref := b.learnedSched
			if !b.learned(mode) {
				var err error
				if ref, err = sdtp.DefaultSchedule(nLayer, sdtp.DefaultKeepRatio); err != nil {
					return nil, err
				}
			}
			var layers []int
			for _, l := range ref.Layers {
				if l >= spec.from {
					layers = append(layers, l)
				}
			}
			if spec.stages > len(layers) {
				return nil, fmt.Errorf("--same-work %s with mode %s: %d stages asked, the default schedule has %d from layer %d on", spec, mode, spec.stages, len(layers), spec.from)
			}
			if spec.stages > 0 {
				layers = layers[:spec.stages]
			}
			sched, err := sdtp.SameWork(ref, nLayer, layers, spec.tilt)
			if err != nil {
				return nil, fmt.Errorf("--same-work %s with mode %s: %w", spec, mode, err)
			}
			out = append(out, variant{mode: mode, sched: sched, custom: true, shape: spec.String()})
		}
	}
	return out, nil
}
