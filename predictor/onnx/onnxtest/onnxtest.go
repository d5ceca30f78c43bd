// Package onnxtest writes ONNX predictor sets with random weights for the
// tiny gemma3 model of gguf/testmodel (testmodel.Gemma3: 6 layers, 64
// wide), for tests.
package onnxtest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// WriteGemma3 writes to dir a predictor set for the tiny gemma3 model
// whose embeddings hash to embdHash (predictor.EmbeddingHash; "" leaves
// the set without an identity): one random MLP (hidden width 16, seeds 1,
// 2, …) per pruning layer of layers, each stage keeping keep. edit, when
// not nil, changes the manifest before it is written. Returns the
// manifest and the MLPs written.
func WriteGemma3(t testing.TB, dir, embdHash string, layers []int, keep float64, edit func(*onnx.Manifest)) (onnx.Manifest, []predictor.MLP) {
	t.Helper()
	var m onnx.Manifest
	m.Version = 1
	m.Model.Arch, m.Model.NLayer, m.Model.NEmbd, m.Model.EmbdHash = "gemma3", 6, 64, embdHash
	m.Layers, m.HeadKeep, m.TailKeepFrac = layers, sdtp.HeadKeep, sdtp.TailKeepFrac
	var mlps []predictor.MLP
	for i := range layers {
		mlps = append(mlps, predictor.RandomMLP(64, 16, uint64(i+1)))
		m.KeepRatios = append(m.KeepRatios, keep)
	}
	if edit != nil {
		edit(&m)
	}
	require.NoError(t, onnx.WriteSet(dir, m, mlps))
	return m, mlps
}
