package bridge

/*
#include <stdlib.h>
#include "stage.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Grad is a differentiable forward of the whole model for gradient × input
// saliency (see sdtp_grad in stage.h). It is not safe for concurrent use.
type Grad struct {
	ptr   *C.sdtp_grad
	nEmbd int
}

// NewGrad prepares gradient passes over c's model.
func (c *Context) NewGrad(threads int) (*Grad, error) {
	eb := newErrBuf()
	defer eb.free()
	ptr := C.sdtp_grad_new(c.ptr, C.int(resolveThreads(threads)), eb.p, errBufSize)
	if ptr == nil {
		return nil, eb.err("gradient pass")
	}
	return &Grad{ptr: ptr, nEmbd: c.model.NEmbd()}, nil
}

// Free releases the pass.
func (g *Grad) Free() {
	if g.ptr != nil {
		C.sdtp_grad_free(g.ptr)
		g.ptr = nil
	}
}

// GradResult is one gradient pass: the mean next-token cross-entropy (of
// the predictions GradInput.LossFrom..n-2) and,
// per requested layer, the residual stream entering it and the loss's
// gradient with respect to it, each [n][n_embd] row-major.
type GradResult struct {
	Loss   float64
	Hidden [][]float32
	Grad   [][]float32
}

// GradInput is one gradient pass over Tokens (positions 0..n-1).
type GradInput struct {
	Tokens []int32
	// LossFrom is the first position whose next-token prediction is in
	// the loss (0: the whole sequence).
	LossFrom int
	Layers   []int // residual streams entering these layers (increasing)
	// Delta, when not nil, holds one [n][n_embd] perturbation per layer
	// added to those streams first (finite-difference checks).
	Delta    [][]float32
	Backward bool // compute the gradients, not only the loss
}

// Run computes the loss and, with Backward, its gradients at the residual
// streams entering the layers.
func (g *Grad) Run(in GradInput) (GradResult, error) {
	var res GradResult
	tokens, layers, delta := in.Tokens, in.Layers, in.Delta
	n, d := len(tokens), g.nEmbd
	if g.ptr == nil {
		return res, errors.New("gradient pass: used after Free")
	}
	if n < 2 || in.LossFrom < 0 || in.LossFrom > n-2 {
		return res, fmt.Errorf("gradient pass: %d tokens with the loss from position %d; need at least 2 tokens and one prediction", n, in.LossFrom)
	}
	if len(layers) == 0 {
		return res, errors.New("gradient pass: no layers")
	}
	if delta != nil && len(delta) != len(layers) {
		return res, fmt.Errorf("gradient pass: %d perturbations for %d layers", len(delta), len(layers))
	}
	plane := n * d
	cl := make([]C.int, len(layers))
	for i, l := range layers {
		cl[i] = C.int(l)
	}
	var deltaPtr, gradPtr *C.float
	var flat []float32
	if delta != nil {
		flat = make([]float32, 0, len(layers)*plane)
		for k, dk := range delta {
			if len(dk) != plane {
				return res, fmt.Errorf("gradient pass: perturbation %d has %d values, want %d", k, len(dk), plane)
			}
			flat = append(flat, dk...)
		}
		deltaPtr = (*C.float)(unsafe.Pointer(&flat[0]))
	}
	hidden := make([]float32, len(layers)*plane)
	var grad []float32
	if in.Backward {
		grad = make([]float32, len(layers)*plane)
		gradPtr = (*C.float)(unsafe.Pointer(&grad[0]))
	}
	var loss C.double
	eb := newErrBuf()
	defer eb.free()
	if C.sdtp_grad_run(g.ptr, (*C.int32_t)(unsafe.Pointer(&tokens[0])), C.int(n), C.int(in.LossFrom), &cl[0], C.int(len(cl)),
		deltaPtr, &loss, (*C.float)(unsafe.Pointer(&hidden[0])), gradPtr, eb.p, errBufSize) != 0 {
		return res, eb.err("gradient pass over %d tokens", n)
	}
	res.Loss = float64(loss)
	for k := range layers {
		res.Hidden = append(res.Hidden, hidden[k*plane:(k+1)*plane])
		if in.Backward {
			res.Grad = append(res.Grad, grad[k*plane:(k+1)*plane])
		}
	}
	return res, nil
}
