package llama

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/sdtp"
)

// A KV policy holds every layer's cache to its budget through a long
// generation after a pruned prefill.
func TestKVPolicyHoldsTheBudgetInGenerate(t *testing.T) {
	gen := func(policy string) Result {
		o := SDTPOptions{Mode: ModeAttention, KeepRatio: 0.8, KVPolicy: policy}
		if policy != "" && policy != sdtp.KVNone {
			o.KVBudget = 0.4 // refused without a policy
		}
		l := loadTiny(t, tiny.gemma3, SetContext(1024), WithSDTP(o))
		res, err := l.Generate(longPrompt, opts(SetTokens(200), IgnoreEOS)...)
		require.NoError(t, err)
		require.Equal(t, 200, res.GeneratedTokens)
		return res
	}
	plain := gen("")
	assert.Equal(t, sdtp.KVNone, plain.SDTP.KVPolicy)
	assert.Zero(t, plain.SDTP.KVLimit)
	assert.Equal(t, plain.Text, gen(sdtp.KVNone).Text)

	for _, policy := range []string{sdtp.KVStreaming, sdtp.KVH2O, sdtp.KVSnapKV} {
		st := gen(policy).SDTP
		limit := int(math.Ceil(0.4 * float64(len(st.Pieces))))
		assert.Equal(t, limit, st.KVLimit, policy)
		const cellBytes = 6 * 2 * 2 * 16 * 2 // layers × (K, V) × KV heads × head dim × F16
		assert.LessOrEqual(t, st.KVPeakBytes, int64(limit*cellBytes), policy)
		assert.Less(t, st.KVPeakBytes, plain.SDTP.KVPeakBytes/2, policy)
		assert.LessOrEqual(t, st.KVBytes, st.KVPeakBytes, policy)
	}
}

func TestKVOptionsValidation(t *testing.T) {
	_, err := New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{KVPolicy: sdtp.KVH2O, KVBudget: 0.5}))
	assert.ErrorContains(t, err, "needs a staged mode")
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeDense, KVPolicy: "lru", KVBudget: 0.5}))
	assert.ErrorContains(t, err, "unknown KV policy")
	_, err = New(tiny.llama, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeDense, KVPolicy: sdtp.KVSnapKV}))
	assert.ErrorContains(t, err, "KV budget")
	_, err = New(tiny.mistral3, SetContext(256), WithSDTP(SDTPOptions{Mode: ModeDense, KVPolicy: sdtp.KVStreaming, KVBudget: 64}))
	assert.ErrorIs(t, err, ErrUnsupportedArch)
}
