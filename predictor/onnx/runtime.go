// Package onnx runs SDTP predictors exported to ONNX through ONNX Runtime
// (github.com/yalue/onnxruntime_go, which loads the shared library at run
// time).
package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/go-sdtp/sdtp/internal/cache"
)

// RuntimeVersion is the ONNX Runtime release third_party/fetch-onnxruntime.sh
// installs (npm onnxruntime-node).
const RuntimeVersion = "1.24.3"

// LibraryEnv overrides the library path.
const LibraryEnv = "SDTP_ONNXRUNTIME_LIB"

// ErrNoRuntime means the ONNX Runtime shared library could not be loaded.
var ErrNoRuntime = errors.New("ONNX Runtime library not available")

var (
	initMu   sync.Mutex
	initPath string
)

// DefaultLibrary is where `make deps` installs the library for this
// platform, unless SDTP_ONNXRUNTIME_LIB names another file.
func DefaultLibrary() string {
	if p := os.Getenv(LibraryEnv); p != "" {
		return p
	}
	name := "libonnxruntime.so.1"
	if runtime.GOOS == "darwin" {
		name = "libonnxruntime." + RuntimeVersion + ".dylib"
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	return filepath.Join(cache.Dir(), "onnxruntime", RuntimeVersion, runtime.GOOS+"-"+arch, name)
}

// Init loads the ONNX Runtime library (path "" = DefaultLibrary) and
// creates the process-wide environment. Later calls with the same path
// are no-ops; another path is an error, since a process holds one runtime.
func Init(path string) error {
	if path == "" {
		path = DefaultLibrary()
	}
	initMu.Lock()
	defer initMu.Unlock()
	if ort.IsInitialized() {
		if path != initPath {
			return fmt.Errorf("onnx: runtime already loaded from %s, cannot switch to %s", initPath, path)
		}
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%w: %s: %v (run `make deps`, or set %s)", ErrNoRuntime, path, err, LibraryEnv)
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNoRuntime, path, err)
	}
	initPath = path
	return nil
}

// Version is the loaded runtime's version string.
func Version() string { return ort.GetVersion() }
