package onnx

import (
	"encoding/json"
	"testing"
)

// FuzzManifest: arbitrary predictors.json content is rejected with an
// error or validated, never a panic.
func FuzzManifest(f *testing.F) {
	f.Add(`{"version":1,"model":{"arch":"gemma3","n_layer":18,"n_embd":640},"layers":[2,4],"keep_ratios":[0.9,0.9],"head_keep":4,"tail_keep_frac":0.1,"files":["a.onnx","b.onnx"]}`)
	f.Add(`{"layers":[-1],"keep_ratios":[]}`)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, raw string) {
		var m Manifest
		if json.Unmarshal([]byte(raw), &m) != nil {
			return
		}
		if m.validate() == nil && len(m.Files) != len(m.Layers) {
			t.Fatalf("validated a manifest with %d files for %d layers", len(m.Files), len(m.Layers))
		}
	})
}
