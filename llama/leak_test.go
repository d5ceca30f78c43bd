// The leak tests read the resident set from /proc, so they are built on
// Linux only (elsewhere they do not exist, rather than skip).

//go:build linux

package llama

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
)

// memory is the Go heap in use after a collection, the bytes the C
// allocator has handed out (llama.cpp's and ggml's allocations) and the
// process's resident set.
type memory struct {
	heap, cInUse, rss uint64
}

// measure reads memory after both allocators hand what is free back to
// the operating system, so that RSS counts memory in use, not caches.
func measure(t *testing.T) memory {
	t.Helper()
	debug.FreeOSMemory()
	bridge.ReleaseFreedMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	statm, err := os.ReadFile("/proc/self/statm")
	require.NoError(t, err)
	resident, err := strconv.ParseUint(strings.Fields(string(statm))[1], 10, 64)
	require.NoError(t, err)
	inUse := bridge.MallocInUse()
	require.GreaterOrEqual(t, inUse, int64(0), "the C library has no mallinfo2")
	return memory{heap: ms.HeapAlloc, cInUse: uint64(inUse), rss: resident * uint64(os.Getpagesize())}
}

func (m memory) String() string {
	return fmt.Sprintf("Go heap %.2f MiB, C in use %.2f MiB, RSS %.1f MiB",
		float64(m.heap)/(1<<20), float64(m.cInUse)/(1<<20), float64(m.rss)/(1<<20))
}

// growthLimit bounds how much each kind of memory may grow per measured
// cycle (a call, or a model's load and release), above a fixed slack for
// what a runtime's own bookkeeping varies between two measurements.
// raceRSS is what the race detector adds to RSS per cycle.
type growthLimit struct{ heap, cInUse, rss, raceRSS uint64 }

const slack = 64 << 10

// assertBounded checks the growth from the measurement after warm-up to the
// end of n more cycles. Per-cycle limits rather than a percentage: one
// leaked context, engine or batch costs hundreds of KiB even on the tiny
// models (a loaded tiny gemma3 with its staged engine holds 198 MiB of C
// allocations), far above each limit. The C allocator's count is exact,
// so its limits are tight; RSS also moves with page reuse and, under the
// race detector, with the detector's own metadata for every goroutine and
// synchronisation it has seen, which the limit's raceRSS allows for.
func assertBounded(t *testing.T, warm, end memory, n int, lim growthLimit) {
	t.Helper()
	t.Logf("after warm-up %v; after %d more cycles %v", warm, n, end)
	grew := func(a, b uint64) float64 { return float64(b) - float64(a) }
	rss := lim.rss
	if raceEnabled {
		rss += lim.raceRSS
	}
	assert.LessOrEqual(t, grew(warm.heap, end.heap), float64(slack+uint64(n)*lim.heap), "Go heap grew")
	assert.LessOrEqual(t, grew(warm.cInUse, end.cInUse), float64(slack+uint64(n)*lim.cInUse), "C allocations grew")
	assert.LessOrEqual(t, grew(warm.rss, end.rss), float64(slack+uint64(n)*rss), "RSS grew")
}

// Per call on a loaded model nothing of ours may stay behind: the C
// allocator's count does not move at all (measured), and RSS only by
// pages reused in another order. The race detector adds ~4 KiB per call.
var perCall = growthLimit{heap: 64, cInUse: 64, rss: 1 << 10, raceRSS: 8 << 10}

// Per model load and release: the pinned llama.cpp (ec98e2002) leaks about
// 80 small structs per model load (the dummy buffers of
// weight_buft_supported), measured at 8.7 KiB of C allocations and ~9 KiB
// of RSS per cycle. The race detector adds ~42 KiB per cycle.
var perModel = growthLimit{heap: 512, cInUse: 12 << 10, rss: 24 << 10, raceRSS: 64 << 10}

// oneThread runs the test's cgo calls on one OS thread. glibc gives each
// thread that allocates its own malloc arena and keeps freed memory in it;
// Go runs cgo calls on whichever thread is free, so unpinned, RSS climbs
// with the number of arenas touched rather than with leaks.
func oneThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

// 1000 generations on one model, alternating prompts so that the prefill
// runs each time, in both paths: memory must not grow with the call count.
func TestSoakPredictDoesNotLeak(t *testing.T) {
	for mode, load := range cancelModes() {
		t.Run(mode, func(t *testing.T) {
			oneThread(t)
			l := load(t)
			prompts := []string{"the cat sat on the mat", "a dog ran in the park"}
			var warm memory
			start := time.Now()
			for i := range 1000 {
				_, err := l.Predict(prompts[i%2], opts(SetTokens(4), IgnoreEOS)...)
				require.NoError(t, err)
				if i == 99 {
					warm = measure(t)
				}
			}
			t.Logf("1000 calls in %v", time.Since(start).Round(time.Millisecond))
			assertBounded(t, warm, measure(t), 900, perCall)
		})
	}
}

// inFreshProcess reports whether the test runs in a process of its own.
// If not, it reruns the test alone in a new process of the test binary
// and fails if that run fails: what earlier tests left in the C allocator
// would otherwise blur a measurement of a few MiB.
func inFreshProcess(t *testing.T) bool {
	const marker = "SDTP_FRESH_PROCESS"
	if os.Getenv(marker) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	// One malloc arena and no per-thread caches: cleanups free on other OS
	// threads than the pinned one that allocated, and chunks parked in those
	// threads' caches or arenas read as growth that is not a leak.
	// No fastbins: the pinned llama.cpp leaks about 80 small structs per
	// model load (dummy buffers in weight_buft_supported). Taken from
	// fastbins, they land in chunks scattered over what earlier models
	// freed and each pins a page malloc_trim would return; in some runs
	// every load then kept ~240 KB of RSS instead of ~9 KB (the live bytes
	// were the same). Without fastbins freed chunks coalesce and the leaked
	// structs stay packed, so RSS follows what is allocated.
	cmd.Env = append(os.Environ(), marker+"="+t.Name(), "GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0")
	out, err := cmd.CombinedOutput()
	t.Logf("in a fresh process:\n%s", out)
	require.NoError(t, err)
	return false
}

// Loading and freeing a model 100 times returns its memory each time.
func TestNewFreeCyclesDoNotLeak(t *testing.T) {
	if !inFreshProcess(t) {
		return
	}
	oneThread(t)
	var warm memory
	for i := range 100 {
		l := newPrunedTiny(t)
		l.Free()
		l.Free()
		_, err := l.Predict("the cat")
		require.ErrorIs(t, err, ErrFreed)
		if i == 9 {
			warm = measure(t)
		}
	}
	assertBounded(t, warm, measure(t), 90, perModel)
}

// A model dropped without Free is released by the cleanup New attaches,
// once a garbage collection finds it unreachable. The collector does not
// see C memory, so a program that drops models relies on collections it
// makes for other reasons (here: one per model).
func TestDroppedModelsAreReleased(t *testing.T) {
	if !inFreshProcess(t) {
		return
	}
	oneThread(t)
	// Cleanups run on their own goroutines after the collection that queued
	// them; wait for each model's before loading the next, as a program
	// that drops a model and later loads another would see it.
	released := func() {
		runtime.GC()
		for deadline := time.Now().Add(10 * time.Second); liveNatives.Load() > 0; {
			require.True(t, time.Now().Before(deadline), "the cleanup of a dropped model did not run")
			time.Sleep(time.Millisecond)
		}
	}
	var warm memory
	for i := range 100 {
		newPrunedTiny(t)
		released()
		if i == 9 {
			warm = measure(t)
		}
	}
	assertBounded(t, warm, measure(t), 90, perModel)
}

// newPrunedTiny loads the tiny gemma3 with the staged engine (the most
// native objects: model, context, engine) and runs it once.
func newPrunedTiny(t *testing.T) *LLama {
	t.Helper()
	l, err := New(tiny.gemma3, SetContext(1024), WithSDTP(SDTPOptions{Mode: ModeAttention}))
	require.NoError(t, err)
	_, err = l.Predict("the cat sat on the mat", opts(SetTokens(4), IgnoreEOS)...)
	require.NoError(t, err)
	return l
}
