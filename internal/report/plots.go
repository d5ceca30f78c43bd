package report

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

const plotW, plotH = 16 * vg.Centimeter, 10 * vg.Centimeter

// series collects named lines, in first-seen order; the first value for
// an x wins, so a length measured by two runs is drawn once.
type series struct {
	names []string
	pts   map[string]plotter.XYs
}

func (s *series) add(name string, x, y float64) {
	if s.pts == nil {
		s.pts = map[string]plotter.XYs{}
	}
	if _, ok := s.pts[name]; !ok {
		s.names = append(s.names, name)
	}
	for _, p := range s.pts[name] {
		if p.X == x {
			return
		}
	}
	s.pts[name] = append(s.pts[name], plotter.XY{X: x, Y: y})
}

// modeOrder fixes each mode's colour and marker across the plots.
var modeOrder = []string{"llamacpp", "dense", "sdtp", "random", "attention", "sdtp-onnx", "sdtp-gguf", "learned", "attention-acc", "hybrid"}

// draw adds the lines to p, each sorted by x: one colour per mode, and
// dashes for its custom layer lists.
func (s *series) draw(p *plot.Plot) error {
	variants := map[string]int{} // custom lines drawn per mode
	for i, name := range s.names {
		xys := s.pts[name]
		slices.SortFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		mode, _, custom := strings.Cut(name, " @ ")
		base, _, _ := strings.Cut(mode, " (") // "sdtp (attention)" keeps sdtp's colour
		k := slices.Index(modeOrder, base)
		if k < 0 {
			k = len(modeOrder) + i
		}
		l.Color, pts.Color, pts.Shape = plotutil.Color(k), plotutil.Color(k), plotutil.Shape(k)
		if custom {
			variants[mode]++
			l.Dashes = plotutil.Dashes(variants[mode])
		}
		p.Add(l, pts)
		p.Legend.Add(name, l, pts)
	}
	return nil
}

// ticks labels an axis with prec decimals: the default labels round
// ratios near 1 (1.01, 0.99) to "1".
type ticks struct{ prec int }

func (t ticks) Ticks(lo, hi float64) []plot.Tick {
	out := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range out {
		if out[i].Label != "" {
			out[i].Label = strconv.FormatFloat(out[i].Value, 'f', t.prec, 64)
		}
	}
	return out
}

// reference draws a dashed horizontal line at y for a baseline.
func reference(p *plot.Plot, name string, y float64) {
	f := plotter.NewFunction(func(float64) float64 { return y })
	f.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	f.Color = color.Gray{Y: 90}
	p.Add(f)
	p.Legend.Add(name, f)
}

// lineName is a pruning row's line: its mode, and its layers when custom.
func lineName(r Row) string {
	if r.CustomLayers {
		return r.Mode + " @ " + joinInts(r.PruneLayers, ",")
	}
	return r.Mode
}

// speedupPlot: prefill speedup over stock llama.cpp against prompt length,
// one line per mode at the default schedule.
func speedupPlot(runs []Run) (*plot.Plot, error) {
	var s series
	for _, run := range ofKind(runs, KindSpeed) {
		for _, r := range run.Results {
			if r.Default() && r.Mode != "llamacpp" && r.SpeedupVsLlamaCpp > 0 {
				s.add(r.Mode, float64(r.PromptTokens), r.SpeedupVsLlamaCpp)
			}
		}
	}
	if s.names == nil {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Prefill speedup over llama.cpp (default schedule)"
	p.X.Label.Text = "prompt tokens"
	p.Y.Label.Text = "speedup (×)"
	p.Y.Tick.Marker = ticks{prec: 1}
	p.Y.Min = 0
	p.Legend.Left = true
	reference(p, "llamacpp", 1)
	return p, s.draw(p)
}

// pplPlot: continuation perplexity relative to dense against the keep
// ratio, one line per scorer (and custom layer list).
func pplPlot(runs []Run) (*plot.Plot, error) {
	var s series
	for _, run := range ofKind(runs, KindQuality) {
		dense := 0.0
		for _, r := range run.Results {
			if r.Mode == "dense" {
				dense = r.PPL
			}
		}
		for _, r := range run.Results {
			if dense > 0 && !r.Reference() && r.KeepRatio > 0 {
				s.add(lineName(r), r.KeepRatio, r.PPL/dense)
			}
		}
	}
	if s.names == nil {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = "Continuation perplexity vs keep ratio per stage"
	p.X.Label.Text = "keep ratio per stage"
	p.X.Tick.Marker = ticks{prec: 2}
	p.Y.Label.Text = "perplexity / dense perplexity"
	p.Y.Tick.Marker = ticks{prec: 2}
	p.Legend.Top = true
	reference(p, "dense", 1)
	return p, s.draw(p)
}

// passkeyPlot: passkey accuracy (over all lengths and depths) against the
// keep ratio, one line per scorer; dense as the reference.
func passkeyPlot(runs []Run) (*plot.Plot, error) {
	type sum struct{ hits, n float64 }
	var s series
	for _, run := range ofKind(runs, KindPasskey) {
		acc := map[string]map[float64]*sum{}
		var names []string
		var dense sum
		var lengths []int
		for _, r := range run.Results {
			if !slices.Contains(lengths, r.PromptTokens) {
				lengths = append(lengths, r.PromptTokens)
			}
			if r.Mode == "dense" {
				dense.hits += r.PasskeyAcc * float64(r.Samples)
				dense.n += float64(r.Samples)
			}
			if r.Reference() || r.KeepRatio == 0 {
				continue
			}
			name := lineName(r)
			if acc[name] == nil {
				acc[name] = map[float64]*sum{}
				names = append(names, name)
			}
			a := acc[name][r.KeepRatio]
			if a == nil {
				a = &sum{}
				acc[name][r.KeepRatio] = a
			}
			a.hits += r.PasskeyAcc * float64(r.Samples)
			a.n += float64(r.Samples)
		}
		if names == nil {
			continue
		}
		p := plot.New()
		p.Title.Text = "Passkey accuracy vs keep ratio per stage (" + joinInts(lengths, ", ") + " tokens)"
		p.X.Label.Text = "keep ratio per stage"
		p.X.Tick.Marker = ticks{prec: 2}
		p.Y.Label.Text = "accuracy"
		p.Y.Min, p.Y.Max = 0, 1.3 // headroom: the legend sits above accuracy 1
		p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}}
		p.Legend.Top, p.Legend.Left = true, true
		if dense.n > 0 {
			reference(p, "dense", dense.hits/dense.n)
		}
		for _, name := range names {
			for keep, a := range acc[name] {
				s.add(name, keep, a.hits/a.n)
			}
		}
		return p, s.draw(p) // one plot: the first passkey run with a sweep
	}
	return nil, nil
}

// keptPlot: tokens alive in each layer for the longest prompt of the speed
// runs, one line per mode at the default schedule.
func keptPlot(runs []Run) (*plot.Plot, error) {
	n := 0
	for _, run := range ofKind(runs, KindSpeed) {
		for _, r := range run.Results {
			if r.Default() {
				n = max(n, r.PromptTokens)
			}
		}
	}
	var s series
	for _, run := range ofKind(runs, KindSpeed) {
		for _, r := range run.Results {
			if r.Default() && r.PromptTokens == n && r.Mode != "llamacpp" {
				for l, k := range r.KeptTokensPerLayer {
					s.add(r.Mode, float64(l), float64(k))
				}
			}
		}
	}
	if s.names == nil {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Tokens per layer, %d-token prompt (default schedule)", n)
	p.X.Label.Text = "layer"
	p.Y.Label.Text = "live tokens (K/V entries)"
	p.Y.Min = 0
	p.Legend.Left = true
	return p, s.draw(p)
}
