package sdtp

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/go-sdtp/sdtp/bridge"
)

func positions(n int) []int32 {
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(i)
	}
	return p
}

func TestAttentionPairs(t *testing.T) {
	assert.Equal(t, 10.0*11/2, attentionPairs(positions(10), 0), "causal: n(n+1)/2")
	// Window 3: each query sees itself and at most 2 earlier tokens.
	assert.Equal(t, 1.0+2+3*8, attentionPairs(positions(10), 3))
	// Gaps from pruning count by position, not by index.
	assert.Equal(t, 1.0+1+2, attentionPairs([]int32{0, 5, 6}, 3))
}

func TestPrefillFLOPs(t *testing.T) {
	sh := Shape{Layers: []bridge.LayerShape{{NHead: 4, NHeadKV: 1, HeadDim: 16, NFF: 128}, {NHead: 4, NHeadKV: 1, HeadDim: 16, NFF: 128}}, NEmbd: 64, NVocab: 100}
	d := 64.0
	params := d*64 + 2*d*16 + 64*d + 3*d*128
	dense := PrefillFLOPs(sh, [][]int32{positions(8), positions(8)})
	assert.Equal(t, 2*d*100+2*(2*params*8+4*64*36), dense)
	half := PrefillFLOPs(sh, [][]int32{positions(8), {0, 1, 2, 7}})
	assert.Less(t, half, dense)
	assert.Greater(t, half, dense/2)

	// Extending: 3 new tokens after 5 cached = the dense 8-token prefill
	// minus the 5-token one's linear and attention work among the first 5.
	ext := DenseExtendFLOPs(sh, 5, 3)
	assert.Equal(t, 2*d*100+2*(2*params*3+4*64*(36-15)), ext)
	windowed := sh
	windowed.Layers = []bridge.LayerShape{{NHead: 4, NHeadKV: 1, HeadDim: 16, NFF: 128, Window: 2}}
	// queries 5, 6, 7 see keys within 2: (5,4)+(5,5), (6,5)+(6,6), (7,6)+(7,7); cached: only (5,4).
	assert.Equal(t, 2*d*100+2*params*3+4*64*6.0, DenseExtendFLOPs(windowed, 5, 3))
}

func TestExpectedAndLivePerLayer(t *testing.T) {
	s := Schedule{Layers: []int{1, 3}, KeepRatios: []float64{0.5, 0.5}}
	// 100 tokens: protected = 4 head + 10 tail; 50, then 25.
	assert.Equal(t, []int{100, 50, 25}, s.Expected(100))
	// Never below the protected tokens.
	assert.Equal(t, []int{20, 10, 6}, s.Expected(20))
	stages := [][]int32{positions(4), positions(2), positions(1)}
	got := LivePerLayer(s, 5, stages)
	assert.Equal(t, []int{4, 2, 2, 1, 1}, []int{len(got[0]), len(got[1]), len(got[2]), len(got[3]), len(got[4])})
}
