package predictors

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
	"github.com/go-sdtp/sdtp/sdtp"
)

// tinyModel writes the tiny gemma3 model and returns its identity.
func tinyModel(t *testing.T) Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Gemma3()))
	return Model{Path: path, Arch: "gemma3", NLayer: 6, NEmbd: 64}
}

// writeSet writes random predictors for a model identity under sets/name.
func writeSet(t *testing.T, sets, name, arch string, nLayer int, hash string) {
	t.Helper()
	var m onnx.Manifest
	m.Version = 1
	m.Model.Arch, m.Model.NLayer, m.Model.NEmbd, m.Model.EmbdHash = arch, nLayer, 64, hash
	m.Layers, m.KeepRatios, m.HeadKeep, m.TailKeepFrac = []int{2}, []float64{0.6}, sdtp.HeadKeep, sdtp.TailKeepFrac
	require.NoError(t, onnx.WriteSet(filepath.Join(sets, name), m, []predictor.MLP{predictor.RandomMLP(64, 16, 1)}))
}

func TestFindPicksTheSetTrainedForTheModel(t *testing.T) {
	m := tinyModel(t)
	hash, err := predictor.EmbeddingHash(m.Path)
	require.NoError(t, err)
	sets, root := t.TempDir(), t.TempDir()
	writeSet(t, sets, "a-other-model", "gemma3", 6, "0000") // same shape, other embeddings
	writeSet(t, sets, "b-other-arch", "llama", 6, hash)     // other architecture
	writeSet(t, sets, "c-unhashed", "gemma3", 6, "")        // no identity: never picked unasked
	writeSet(t, sets, "d-tiny", "gemma3", 6, hash)          // the one

	dir, name, err := find(os.DirFS(sets), root, m)
	require.NoError(t, err)
	assert.Equal(t, "d-tiny", name)
	require.NotEmpty(t, dir)
	assert.Equal(t, root, filepath.Dir(dir), "extracted under the cache root")
	set, err := onnx.LoadFor(dir, m.Path, m.Arch, m.NLayer, m.NEmbd, onnx.Options{})
	require.NoError(t, err, "the extracted set loads and passes LoadFor's checks")
	set.Close()

	again, _, err := find(os.DirFS(sets), root, m)
	require.NoError(t, err)
	assert.Equal(t, dir, again, "keyed by content: extracted once")
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary directories left")

	// Changed content gets a directory of its own.
	writeSet(t, sets, "d-tiny", "gemma3", 6, hash)
	require.NoError(t, os.WriteFile(filepath.Join(sets, "d-tiny", "stage0.onnx"), []byte("changed"), 0o644))
	changed, _, err := find(os.DirFS(sets), root, m)
	require.NoError(t, err)
	assert.NotEqual(t, dir, changed)
}

func TestFindMismatchingModel(t *testing.T) {
	m := tinyModel(t)
	sets := t.TempDir()
	writeSet(t, sets, "other", "gemma3", 6, "0000")
	dir, name, err := find(os.DirFS(sets), t.TempDir(), m)
	require.NoError(t, err)
	assert.Empty(t, dir)
	assert.Empty(t, name)
}

func TestFindNoSets(t *testing.T) {
	m := tinyModel(t)
	dir, _, err := find(fstest.MapFS{}, t.TempDir(), m)
	require.NoError(t, err)
	assert.Empty(t, dir)
	// The shipped sets are for real models, none for the tiny one.
	dir, _, err = For(m)
	require.NoError(t, err)
	assert.Empty(t, dir)
}

func TestShippedSetMatchesTheDefaultModel(t *testing.T) {
	path := cache.DefaultModel()
	_, err := os.Stat(path)
	require.NoError(t, err, "default model missing: run `make deps`")
	// The default model is found by content, wherever it lies.
	dir, name, err := find(shipped, filepath.Join(t.TempDir(), "predictors"), Model{Path: path, Arch: "gemma3", NLayer: 18, NEmbd: 640})
	require.NoError(t, err)
	assert.Equal(t, "gemma-3-270m", name)
	assert.FileExists(t, filepath.Join(dir, onnx.ManifestName))
}

// Locate's order: the named directory, heads in the GGUF, a directory
// beside the model, the shipped set; nothing for a model with none.
func TestLocateOrder(t *testing.T) {
	m := tinyModel(t)
	src, err := Locate("", m)
	require.NoError(t, err)
	assert.Equal(t, Source{}, src, "no predictors anywhere")

	src, err = Locate("/some/dir", m)
	require.NoError(t, err)
	assert.Equal(t, Source{Kind: ScorerONNX, Dir: "/some/dir", From: "--predictors"}, src)

	hash, err := predictor.EmbeddingHash(m.Path)
	require.NoError(t, err)
	writeSet(t, filepath.Dir(m.Path), "tiny.predictors", "gemma3", 6, hash)
	src, err = Locate("", m)
	require.NoError(t, err)
	assert.Equal(t, ScorerONNX, src.Kind)
	assert.Equal(t, filepath.Join(filepath.Dir(m.Path), "tiny.predictors"), src.Dir)
	assert.Equal(t, "beside the model", src.From)
}
