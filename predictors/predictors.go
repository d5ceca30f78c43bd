// Package predictors ships the learned predictor sets the project trained
// (one directory per model: predictors.json and one ONNX file per stage,
// docs/PREDICTORS.md) inside every binary, and finds the set trained for a
// given model by its identity, so that mode sdtp needs no flag.
//
// ONNX Runtime opens models from files, so the matching set is written
// once to cache.Dir()/predictors/NAME-HASH, HASH being its content's
// sha256: a changed set gets a new directory, and an unchanged one is
// reused across runs and programs.
package predictors

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
)

//go:embed */predictors.json */*.onnx
var shipped embed.FS

// Model is the identity a set is checked against: what onnx.LoadFor
// checks, read from the model file.
type Model struct {
	Path   string // GGUF file, for the embedding hash
	Arch   string
	NLayer int
	NEmbd  int
}

// For returns the directory of the shipped set trained for m (same
// architecture, depth, width and embedding hash), extracted to the cache,
// and the set's name (its directory in the repository, e.g.
// "gemma-3-270m"); "" and "" when no shipped set is for this model.
func For(m Model) (dir, name string, err error) {
	return find(shipped, filepath.Join(cache.Dir(), "predictors"), m)
}

// find is For over any set of predictor directories, extracting into root.
func find(sets fs.FS, root string, m Model) (dir, name string, err error) {
	entries, err := fs.ReadDir(sets, ".")
	if err != nil {
		return "", "", fmt.Errorf("predictors: %w", err)
	}
	hash := "" // the model's embedding hash, computed once a shape matches
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := fs.ReadFile(sets, path.Join(e.Name(), onnx.ManifestName))
		if err != nil {
			continue // not a predictor set
		}
		var man onnx.Manifest
		if err := json.Unmarshal(raw, &man); err != nil {
			return "", "", fmt.Errorf("predictors: shipped set %s: %w", e.Name(), err)
		}
		id := man.Model
		if id.Arch != m.Arch || id.NLayer != m.NLayer || id.NEmbd != m.NEmbd || id.EmbdHash == "" {
			continue // a set without a hash could match any model of the shape: never picked unasked
		}
		if hash == "" {
			if hash, err = predictor.EmbeddingHash(m.Path); err != nil {
				return "", "", err
			}
		}
		if id.EmbdHash != hash {
			continue
		}
		dir, err := extract(sets, e.Name(), man, root)
		return dir, e.Name(), err
	}
	return "", "", nil
}

// extract writes the set's manifest and files under root, once per
// content, and returns its directory.
func extract(sets fs.FS, name string, man onnx.Manifest, root string) (string, error) {
	files := append([]string{onnx.ManifestName}, man.Files...)
	h := sha256.New()
	data := make([][]byte, len(files))
	for i, f := range files {
		if f != path.Base(f) || slices.Contains(files[:i], f) {
			return "", fmt.Errorf("predictors: shipped set %s: bad file name %q", name, f)
		}
		b, err := fs.ReadFile(sets, path.Join(name, f))
		if err != nil {
			return "", fmt.Errorf("predictors: shipped set %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
		data[i] = b
	}
	dir := filepath.Join(root, name+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(filepath.Join(dir, onnx.ManifestName)); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("predictors: %w", err)
	}
	// Write beside the target and rename, so that a concurrent run never
	// sees half a set.
	tmp, err := os.MkdirTemp(root, name+".tmp-")
	if err != nil {
		return "", fmt.Errorf("predictors: %w", err)
	}
	for i, f := range files {
		if err := os.WriteFile(filepath.Join(tmp, f), data[i], 0o644); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("predictors: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(filepath.Join(dir, onnx.ManifestName)); statErr == nil {
			return dir, nil // another process extracted it first
		}
		return "", fmt.Errorf("predictors: %w", err)
	}
	return dir, nil
}
