//go:build evaldata

package fidelity

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/fetch"
)

// On the real files (make data), the split holds too: SQuAD's 17 dev
// articles hold 2,660 answerable questions; HotpotQA stops at 3,702.
// Built only with -tags evaldata: make fidelity runs it after make data,
// so the files are there and a missing one fails.
func TestRealDevSplits(t *testing.T) {
	dir := fetch.LongContextEvalDir()
	sq, err := LoadSQuAD(filepath.Join(dir, "squad.json"))
	require.NoError(t, err)
	assert.Len(t, sq, 2660)
	hp, err := LoadHotpot(filepath.Join(dir, "hotpotqa.json"))
	require.NoError(t, err)
	assert.LessOrEqual(t, len(hp), HotpotDevRecords)
	assert.Greater(t, len(hp), HotpotDevRecords-50)
}
