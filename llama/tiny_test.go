package llama

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

// Tiny random-weight models written by our own GGUF writer: unit tests run
// in seconds with no download.
var tiny struct {
	dir    string
	llama  string // 4-layer llama
	draft  string // llama with the same vocabulary and other weights
	gemma3 string // 6-layer gemma3 with sliding-window layers
	// mistral3 is the llama model under an architecture name llama.cpp
	// runs and the staged engine does not.
	mistral3 string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sdtp-llama-test")
	if err != nil {
		panic(err)
	}
	tiny.dir = dir
	tiny.llama = filepath.Join(dir, "llama.gguf")
	tiny.draft = filepath.Join(dir, "draft.gguf")
	tiny.gemma3 = filepath.Join(dir, "gemma3.gguf")
	tiny.mistral3 = filepath.Join(dir, "mistral3.gguf")
	draft := testmodel.Llama()
	draft.Seed = 7
	draft.NLayer = 2
	for path, cfg := range map[string]testmodel.Config{tiny.llama: testmodel.Llama(), tiny.draft: draft,
		tiny.gemma3: testmodel.Gemma3(), tiny.mistral3: testmodel.Mistral3()} {
		if err := testmodel.Write(path, cfg); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadTiny(t *testing.T, path string, opts ...ModelOption) *LLama {
	t.Helper()
	l, err := New(path, append([]ModelOption{SetContext(256)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(l.Free)
	return l
}

// tinyModels names both architectures for table tests.
func tinyModels() map[string]string {
	return map[string]string{"llama": tiny.llama, "gemma3": tiny.gemma3}
}

var greedy = []PredictOption{SetTemperature(0), SetThreads(2)}

func opts(extra ...PredictOption) []PredictOption {
	return append(append([]PredictOption(nil), greedy...), extra...)
}
