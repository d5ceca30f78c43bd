package loadtest_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/server"
	"github.com/go-sdtp/sdtp/server/loadtest"
)

func serve(t *testing.T, queue int) string {
	t.Helper()
	model := filepath.Join(t.TempDir(), "gemma3.gguf")
	require.NoError(t, testmodel.Write(model, testmodel.Gemma3()))
	srv, err := server.New(server.Config{Model: model, Parallel: 1, Queue: queue, CtxSize: 512,
		SDTP: llama.SDTPOptions{Mode: llama.ModeAttention}})
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts.URL
}

func TestRun(t *testing.T) {
	url := serve(t, 8)
	for _, chat := range []bool{false, true} {
		r, err := loadtest.Run(context.Background(), loadtest.Config{URL: url, Chat: chat, Clients: 2, Requests: 3, Words: 40, MaxTokens: 3})
		require.NoError(t, err)
		assert.Equal(t, 6, r.Requests)
		assert.Equal(t, 6, r.OK)
		assert.Empty(t, r.Errors)
		assert.Greater(t, r.PromptTokens, 40.0)
		assert.Positive(t, r.TTFTP50)
		assert.GreaterOrEqual(t, r.TTFTP95, r.TTFTP50)
		assert.GreaterOrEqual(t, r.LatencyP50, r.TTFTP50)
		assert.Positive(t, r.ServerPrefillMS)
		assert.Positive(t, r.RequestsPerSec)
		assert.Positive(t, r.RSSBefore, "read from the server's /metrics")
		assert.Positive(t, r.RSSAfter)
	}
}

// Without a queue, clients beyond the one slot are refused with 503, and
// the report counts them.
func TestRunCountsRefusals(t *testing.T) {
	url := serve(t, 0)
	r, err := loadtest.Run(context.Background(), loadtest.Config{URL: url, Clients: 4, Requests: 4, Words: 60, MaxTokens: 8})
	require.NoError(t, err)
	assert.Equal(t, r.Requests, r.OK+r.Errors["503"])
	assert.Len(t, r.Errors, 1, "503 is the only error: %v", r.Errors)
	assert.Positive(t, r.OK)
}

func TestRunRejectsBadConfig(t *testing.T) {
	_, err := loadtest.Run(context.Background(), loadtest.Config{URL: "http://127.0.0.1:1", Clients: 0, Requests: 1, Words: 1, MaxTokens: 1})
	assert.Error(t, err)
	_, err = loadtest.Run(context.Background(), loadtest.Config{URL: "http://127.0.0.1:1", Clients: 1, Requests: 1, Words: 10, MaxTokens: 1})
	assert.ErrorContains(t, err, "unreachable")
}
