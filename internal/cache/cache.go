// Package cache locates the per-user cache that `make deps` fills: models
// and runtime libraries shared by every clone of the project.
package cache

import (
	"os"
	"path/filepath"
)

// DefaultModelName is the file name of the default model, Gemma 3 270M
// Q4_K_M, as internal/fetch installs the model named gemma-3-270m.
const DefaultModelName = "gemma-3-270m-q4_k_m.gguf"

// Dir is ${XDG_CACHE_HOME:-$HOME/.cache}/go-sdtp, the directory that
// `make deps` and `make data` (internal/fetch, third_party/) write to.
func Dir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "go-sdtp")
}

// DefaultModel is the path of the default model (present after `make deps`).
func DefaultModel() string { return filepath.Join(Dir(), "models", DefaultModelName) }
