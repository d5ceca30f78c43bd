package llama

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// collect runs pieces through an output and returns what the callback saw,
// the final text, and the index of the piece that stopped generation.
func collect(t *testing.T, stops []string, pieces ...string) (chunks []string, text string, stoppedAt int) {
	t.Helper()
	o := &output{emit: func(s string) bool { chunks = append(chunks, s); return true }}
	for _, s := range stops {
		o.stops = append(o.stops, []byte(s))
		o.maxStop = max(o.maxStop, len(s))
	}
	stoppedAt = -1
	for i, p := range pieces {
		if o.add([]byte(p)) {
			stoppedAt = i
			break
		}
	}
	return chunks, o.finish(), stoppedAt
}

func TestOutputCutsStopWordAcrossPieces(t *testing.T) {
	chunks, text, at := collect(t, []string{"\nUser:"}, "Hello", " there", "\nUs", "er:", " ignored")
	assert.Equal(t, "Hello there", text)
	assert.Equal(t, 3, at)
	assert.Equal(t, "Hello there", strings.Join(chunks, ""), "the callback never sees the stop word")
}

func TestOutputReleasesFalseStopPrefix(t *testing.T) {
	chunks, text, at := collect(t, []string{"STOP"}, "a ST", "ART b")
	assert.Equal(t, -1, at)
	assert.Equal(t, "a START b", text)
	assert.Equal(t, []string{"a ", "START b"}, chunks, "\"ST\" is held back until it cannot be a stop word")
}

func TestOutputHoldsSplitUTF8(t *testing.T) {
	euro := "€" // 3 bytes, split over two tokens
	chunks, text, _ := collect(t, nil, "x"+euro[:1], euro[1:], "y")
	assert.Equal(t, "x€y", text)
	for _, c := range chunks {
		assert.True(t, utf8.ValidString(c), "chunk %q is not valid UTF-8", c)
	}
	assert.Equal(t, "x€y", strings.Join(chunks, ""))
}

func TestOutputCallbackFalseStops(t *testing.T) {
	n := 0
	o := &output{emit: func(string) bool { n++; return n < 2 }}
	assert.False(t, o.add([]byte("a")))
	assert.True(t, o.add([]byte("b")))
	assert.Equal(t, "ab", o.finish())
}

func TestParseLogitBias(t *testing.T) {
	got, err := parseLogitBias("15043+1, 2-inf 7+0.5")
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, int32(15043), got[0].Token)
	assert.Equal(t, float32(1), got[0].Bias)
	assert.True(t, got[1].Bias < -1e30)
	assert.Equal(t, float32(0.5), got[2].Bias)

	for _, bad := range []string{"abc", "+1", "12", "12+x", "-3+1", "5+nan"} {
		_, err := parseLogitBias(bad)
		assert.Error(t, err, bad)
	}
	empty, err := parseLogitBias("")
	require.NoError(t, err)
	assert.Empty(t, empty)
}
