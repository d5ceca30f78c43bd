// Package bridge is go-sdtp's cgo layer over llama.cpp and ggml.
//
// llama.cpp (libllama, ggml and the CPU backend) is compiled by the Go
// toolchain from the pinned github.com/ollama/ollama module, which vendors
// upstream llama.cpp. Its headers come from third_party/ in a clone (see
// `make deps`), or, when this module is itself a dependency in the module
// cache, from the ollama module beside it.
// Every C++ call that can throw goes through shim.cpp, so a llama.cpp
// failure becomes a Go error instead of a crash.
package bridge

/*
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/llama.cpp/include -I${SRCDIR}/../third_party/llama.cpp/src
#cgo CPPFLAGS: -I${SRCDIR}/../third_party/ggml/include
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/llama/llama.cpp/include
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/llama/llama.cpp/src
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/ml/backend/ggml/ggml/include
#cgo CXXFLAGS: -std=c++17
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	_ "github.com/ollama/ollama/llama/llama.cpp/src" // compiles libllama + ggml + ggml-cpu
)

// errBufSize bounds the error text a shim call can return.
const errBufSize = 1024

var backendOnce sync.Once

// init routes llama.cpp's log through the shim. Nothing is printed by
// default (failures come back as errors); SDTP_LOG=error|warn|info|debug
// prints llama.cpp's log at that level and above.
func init() {
	C.sdtp_log_init()
	levels := map[string]LogLevel{"error": LogError, "warn": LogWarn, "info": LogInfo, "debug": LogDebug}
	SetLogLevel(LogNone)
	if l, ok := levels[strings.ToLower(os.Getenv("SDTP_LOG"))]; ok {
		SetLogLevel(l)
	}
}

// initBackend initialises llama.cpp's backends once per process.
func initBackend() { backendOnce.Do(func() { C.llama_backend_init() }) }

// LogLevel selects which llama.cpp/ggml log lines reach stderr.
type LogLevel int

const (
	LogNone  LogLevel = C.GGML_LOG_LEVEL_NONE
	LogDebug LogLevel = C.GGML_LOG_LEVEL_DEBUG
	LogInfo  LogLevel = C.GGML_LOG_LEVEL_INFO
	LogWarn  LogLevel = C.GGML_LOG_LEVEL_WARN
	LogError LogLevel = C.GGML_LOG_LEVEL_ERROR
)

// SetLogLevel sets the minimum level printed to stderr (LogNone = silent).
func SetLogLevel(l LogLevel) { C.sdtp_log_set_level(C.int(l)) }

// SystemInfo reports the CPU features ggml was compiled with.
func SystemInfo() string {
	initBackend()
	return C.GoString(C.llama_print_system_info())
}

// errBuf is a C buffer that a shim call fills with an exception message.
type errBuf struct{ p *C.char }

func newErrBuf() errBuf {
	p := (*C.char)(C.calloc(errBufSize, 1))
	return errBuf{p}
}

func (b errBuf) free() { C.free(unsafe.Pointer(b.p)) }

// err builds an error from what the shim caught and what llama.cpp logged.
func (b errBuf) err(format string, args ...any) error {
	return cError(C.GoString(b.p), format, args...)
}

// cError formats an error with llama.cpp's own explanation attached: the
// exception text, else the last ERROR line it logged.
func cError(exc string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	logged := make([]byte, errBufSize)
	C.sdtp_log_take_error((*C.char)(unsafe.Pointer(&logged[0])), errBufSize)
	detail := exc
	if detail == "" {
		detail = strings.TrimSpace(string(logged[:clen(logged)]))
	}
	if detail == "" {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %s", msg, detail)
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// ReleaseFreedMemory hands memory that freed models and contexts leave in
// the C allocator back to the operating system. glibc keeps freed blocks
// in its per-thread arenas (cgo calls run on many threads), so without
// this a process that loads and frees models holds more resident memory
// with every cycle until the arenas fill. It does nothing on other C
// libraries.
func ReleaseFreedMemory() { C.sdtp_release_free_memory() }

// MallocInUse is the number of bytes the C allocator has handed out and not
// had back (glibc's mallinfo2: arena chunks in use plus mmapped chunks),
// across all arenas: the C side's live memory, unlike RSS without the
// allocator's free lists and without memory other runtimes map (the race
// detector's shadow). It returns -1 on C libraries without mallinfo2.
func MallocInUse() int64 { return int64(C.sdtp_malloc_in_use()) }

var numaOnce sync.Once

// InitNUMA distributes ggml's work across NUMA nodes (once per process).
func InitNUMA() {
	initBackend()
	numaOnce.Do(func() { C.llama_numa_init(C.GGML_NUMA_STRATEGY_DISTRIBUTE) })
}
