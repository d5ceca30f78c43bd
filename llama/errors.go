package llama

import (
	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
)

// Errors to test with errors.Is; docs/ERRORS.md lists what causes each and
// what to do. A missing model file matches os.ErrNotExist.
var (
	ErrNotGGUF           = bridge.ErrNotGGUF     // the file is not a GGUF model
	ErrModelLoad         = bridge.ErrModelLoad   // llama.cpp refused the GGUF (corrupt, truncated, unknown architecture)
	ErrPredictorMismatch = predictor.ErrMismatch // predictors trained for another model or settings
	ErrNoRuntime         = onnx.ErrNoRuntime     // the ONNX Runtime library cannot be loaded
)
