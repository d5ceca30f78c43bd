package bridge

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

// The pinned llama.cpp frees a context's backends before its scheduler,
// whose free then reads them (sdtp_context_free in shim.cpp). With glibc
// filling freed memory (MALLOC_PERTURB_, the thread cache off so every
// free is filled) llama_free crashes on that read every time; Context.Free
// must not. The contexts are made and freed in a child process, which
// such a crash would kill.
func TestContextFreeReadsNoFreedMemory(t *testing.T) {
	if os.Getenv("SDTP_FREE_CHILD") == "1" {
		path := filepath.Join(t.TempDir(), "tiny.gguf")
		require.NoError(t, testmodel.Write(path, testmodel.Llama()))
		m, err := LoadModel(path, ModelParams{UseMMap: true})
		require.NoError(t, err)
		defer m.Free()
		for i := range 3 {
			c, err := m.NewContext(ContextParams{NCtx: 64, NBatch: 64, Threads: 1})
			require.NoError(t, err)
			require.NoError(t, c.Decode(seq(3, 8), 0, OutputLast))
			c.Free()
			fmt.Printf("context %d freed\n", i)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestContextFreeReadsNoFreedMemory$", "-test.v")
	cmd.Env = append(os.Environ(), "SDTP_FREE_CHILD=1", "MALLOC_PERTURB_=165", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "context 2 freed")
}
