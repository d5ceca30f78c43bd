package predictor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/go-sdtp/sdtp/gguf"
)

// EmbeddingHash identifies the model predictors were trained for: the
// sha256 of its token_embd.weight bytes. Re-quantising or fine-tuning the
// embeddings changes it; renaming the file does not.
func EmbeddingHash(modelPath string) (string, error) {
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
