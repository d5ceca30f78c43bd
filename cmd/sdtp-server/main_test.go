package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
)

// lockedBuffer is stderr shared by the server goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The command serves on a random loopback port and exits cleanly on
// SIGTERM.
func TestServeUntilSIGTERM(t *testing.T) {
	model := filepath.Join(t.TempDir(), "gemma3.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	var stderr lockedBuffer
	addr := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		exited <- run([]string{"-m", model, "--port", "0", "-c", "256", "--parallel", "2", "--mode", "attention"},
			&stderr, func(a string) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-exited:
		t.Fatalf("server exited: %v\n%s", err, stderr.String())
	}
	assert.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)

	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "Hello", "max_tokens": 3, "temperature": 0}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"mode":"attention"`)

	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	assert.Contains(t, stderr.String(), "shutting down")
	_, err = http.Get(url + "/health")
	assert.Error(t, err, "the listener is closed")
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--keep-ratio", "0"},
		{"--keep-ratio", "1.5"},
		{"--port", "70000"},
		{"-c", "-1"},
		{"--threads", "-2"},
		{"stray"},
		{"--no-such-flag"},
		{"--kv-budget", "0.5"}, // without a --kv-policy
	} {
		_, err := parseFlags(args, io.Discard)
		assert.Error(t, err, "%v", args)
	}
	c, err := parseFlags([]string{"-m", "x.gguf", "-c", "2048", "-t", "2", "--parallel", "3", "--queue", "0", "--mode", "llamacpp"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "x.gguf", c.Model)
	assert.Equal(t, 2048, c.CtxSize)
	assert.Equal(t, 2, c.Threads)
	assert.Equal(t, 3, c.Parallel)
	assert.Equal(t, 0, c.Queue, "0 is a value: no waiting")
	assert.True(t, c.modeGiven)
	assert.Equal(t, "127.0.0.1", c.host)
	assert.Equal(t, 8080, c.port)
	assert.Zero(t, c.SDTP.KeepRatio, "unset: learned predictors keep their trained ratios")
	assert.Zero(t, c.SDTP.KVBudget, "no budget without a KV policy")

	c, err = parseFlags([]string{"--keep-ratio", "0.8", "--kv-policy", "h2o"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 0.8, c.SDTP.KeepRatio)
	assert.Equal(t, 0.4, c.SDTP.KVBudget)
}
