package predictor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-sdtp/sdtp/gguf"
)

// EmbeddingHash identifies the model predictors were trained for: the
// sha256 of its token_embd.weight bytes. Re-quantising or fine-tuning the
// embeddings changes it; renaming the file does not.
//
// A process asks for it at every staged load (finding the predictors,
// then checking them), and hashing means parsing the GGUF's metadata and
// reading the embeddings (~0.5 s for Gemma 3 270M), so hashes are kept per
// file path, size and modification time: a rewritten file is hashed again.
func EmbeddingHash(modelPath string) (string, error) {
	st, err := os.Stat(modelPath)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(modelPath)
	if err != nil {
		return "", err
	}
	key := fileVersion{abs, st.Size(), st.ModTime()}
	if h, ok := embeddingHashes.Load(key); ok {
		return h.(string), nil
	}
	h, err := hashEmbeddings(modelPath)
	if err == nil {
		embeddingHashes.Store(key, h)
	}
	return h, err
}

type fileVersion struct {
	path string
	size int64
	mod  time.Time
}

var embeddingHashes sync.Map // fileVersion → hex sha256

func hashEmbeddings(modelPath string) (string, error) {
	f, err := gguf.Open(modelPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := f.TensorReader("token_embd.weight")
	if err != nil {
		return "", fmt.Errorf("predictor: %s: %w", modelPath, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
