package llama

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each documented error (docs/ERRORS.md) is what the matching bad input
// produces, testable with errors.Is; bad model files are in
// TestNewRejectsBadFiles.
func TestErrorsAreTestable(t *testing.T) {
	dir := t.TempDir()
	newErr := func(path string, opts ...ModelOption) error {
		l, err := New(path, opts...)
		if l != nil {
			l.Free()
		}
		return err
	}
	freed, err := New(tiny.llama, SetContext(256))
	require.NoError(t, err)
	freed.Free()
	_, freedErr := freed.Predict("x")
	_, longErr := loadTiny(t, tiny.llama).Predict(strings.Repeat("the cat ", 300))
	other := filepath.Join(dir, "preds")
	writePredictors(t, other, []int{2}, "")

	for name, c := range map[string]struct {
		err    error
		target error
	}{
		"prompt too long": {longErr, ErrContextFull},
		"used after Free": {freedErr, ErrFreed},
		"predictors of another model": {newErr(tiny.llama, SetContext(256),
			WithSDTP(SDTPOptions{Mode: ModeSDTP, Predictors: other})), ErrPredictorMismatch},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, c.err)
			assert.True(t, errors.Is(c.err, c.target), "%v is not %v", c.err, c.target)
		})
	}
}
