package bridge

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
)

// ErrAborted is returned by Context.Decode and Engine.Run when they stopped
// because the context.Context given to AbortWhen was done.
var ErrAborted = errors.New("computation aborted")

// abortFlag is the flag ggml's CPU backend polls between graph operations
// (its abort callback). It lives in C memory because ggml keeps the pointer;
// Go raises it from the goroutine context.AfterFunc starts, so a running
// llama_decode or engine run stops within one operation of a cancel instead
// of finishing its batch.
type abortFlag struct{ p *C.sdtp_abort }

func newAbortFlag() abortFlag { return abortFlag{C.sdtp_abort_new()} }

func (f abortFlag) free() { C.sdtp_abort_free(f.p) }

// when raises the flag as soon as ctx is done (at once if it already is).
// The returned release lowers it; call it when the work for ctx is over and
// before arming the flag for other work.
func (f abortFlag) when(ctx context.Context) (release func()) {
	C.sdtp_abort_set(f.p, C.bool(ctx.Err() != nil))
	raised := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		C.sdtp_abort_set(f.p, true)
		close(raised)
	})
	return func() {
		if !stop() {
			<-raised // ctx ended as the work did: let the raise land before lowering
		}
		C.sdtp_abort_set(f.p, false)
	}
}
