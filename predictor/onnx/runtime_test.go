package onnx

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInitLoadsPinnedRuntime(t *testing.T) {
	err := Init("/nonexistent/libonnxruntime.so.1")
	assert.ErrorIs(t, err, ErrNoRuntime)
	assert.ErrorContains(t, err, "make deps")

	require.NoError(t, Init(""), "the library `make deps` installs must load")
	assert.Contains(t, Version(), RuntimeVersion)
	assert.NoError(t, Init(""), "a second Init is a no-op")
	assert.Error(t, Init("/another/libonnxruntime.so.1"), "a process holds one runtime")
}
