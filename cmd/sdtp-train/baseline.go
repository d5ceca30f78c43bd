package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/sdtp/train"
)

// baselineResult is how an existing predictor set (--baseline, e.g. the
// shipped one) ranks this run's held-out sequences: per stage of this run
// that it has a predictor for, the same figures as the run's own variant,
// so a retrained set is judged against it on the same records and target.
type baselineResult struct {
	Dir    string          `json:"dir"`
	Stages []baselineStage `json:"stages"`
}

type baselineStage struct {
	Layer    int     `json:"layer"`
	Spearman float64 `json:"val_spearman"`
	Kendall  float64 `json:"val_kendall"`
}

// baseline is a predictor set read by openBaseline: its predictors at
// the run's stages (nil where it has none).
type baseline struct {
	dir  string
	mlps []*predictor.MLP
}

// openBaseline reads the predictors in dir at the layers of sched, before
// calibration, so a wrong --baseline costs no calibration time. Errors:
// dir is not a predictor set for the model (onnx.Manifest.CheckModel:
// architecture arch, nLayer layers, width d, embedding hash modelHash), or
// has no predictor at any of sched's layers.
func openBaseline(dir string, sched sdtp.Schedule, arch string, nLayer, d int, modelHash string) (*baseline, error) {
	man, err := onnx.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("--baseline: %w", err)
	}
	if err := man.CheckModel(dir, arch, nLayer, d, func() (string, error) { return modelHash, nil }); err != nil {
		return nil, fmt.Errorf("--baseline: %w", err)
	}
	b := &baseline{dir: dir, mlps: make([]*predictor.MLP, len(sched.Layers))}
	found := false
	for s, layer := range sched.Layers {
		if i := slices.Index(man.Layers, layer); i >= 0 {
			mlp, err := onnx.ReadMLP(filepath.Join(dir, man.Files[i]))
			if err != nil {
				return nil, fmt.Errorf("--baseline: %w", err)
			}
			b.mlps[s], found = &mlp, true
		}
	}
	if !found {
		return nil, fmt.Errorf("--baseline: the predictors in %s prune before layers %v, none of this run's %v", dir, man.Layers, sched.Layers)
	}
	return b, nil
}

// eval scores the held-out records valRecs with the baseline's predictors
// against target, each with the context features it was trained with.
func (b *baseline) eval(valRecs []train.Record, layers []int, d int, target train.Target) *baselineResult {
	res := &baselineResult{Dir: b.dir}
	for s, mlp := range b.mlps {
		if mlp != nil {
			sp, kt := train.Evaluate(*mlp, train.Examples(valRecs, s, d, true, mlp.Context > 0, target))
			res.Stages = append(res.Stages, baselineStage{Layer: layers[s], Spearman: sp, Kendall: kt})
		}
	}
	return res
}

// print adds the baseline's rows to the held-out table of printReport,
// "-" under the layers it has no predictor for.
func (b *baselineResult) print(w io.Writer, layers []int) {
	for _, row := range []struct {
		name string
		val  func(baselineStage) float64
	}{{"s", func(s baselineStage) float64 { return s.Spearman }}, {"k", func(s baselineStage) float64 { return s.Kendall }}} {
		fmt.Fprintf(w, "%-30s", "baseline "+row.name)
		for _, l := range layers {
			if i := slices.IndexFunc(b.Stages, func(s baselineStage) bool { return s.Layer == l }); i >= 0 {
				fmt.Fprintf(w, " %6.3f", row.val(b.Stages[i]))
			} else {
				fmt.Fprintf(w, " %6s", "-")
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "baseline: %s, scored on the same held-out records and target\n", b.Dir)
}
