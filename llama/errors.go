package llama

import (
	"errors"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/predictor"
	"github.com/go-sdtp/sdtp/predictor/onnx"
)

// Errors to test with errors.Is; docs/ERRORS.md lists what causes each and
// what to do. A missing model file matches os.ErrNotExist.
var (
	ErrNotGGUF           = bridge.ErrNotGGUF     // the file is not a GGUF model
	ErrModelLoad         = bridge.ErrModelLoad   // llama.cpp refused the GGUF (corrupt, truncated, unknown architecture)
	ErrContextFull       = bridge.ErrContextFull // the prompt or the generation does not fit the context window
	ErrPredictorMismatch = predictor.ErrMismatch // predictors trained for another model or settings
	ErrNoRuntime         = onnx.ErrNoRuntime     // the ONNX Runtime library cannot be loaded
	ErrFreed             = errors.New("llama: model already freed")
	// ErrUnsupportedArch: a pruning mode was asked for on a model whose
	// architecture the staged engine does not implement.
	ErrUnsupportedArch = errors.New("architecture not supported by the staged engine")
	// ErrCancelled: the context.Context of PredictContext or GenerateContext
	// ended the call; the error also matches the context's own error
	// (context.Canceled or context.DeadlineExceeded).
	ErrCancelled = errors.New("llama: cancelled")
	// ErrNoChatTemplate: ApplyChatTemplate on a model without
	// tokenizer.chat_template (a base model).
	ErrNoChatTemplate = bridge.ErrNoChatTemplate
	// ErrUnsupportedChatTemplate: the model's chat template is none of the
	// formats llama_chat_apply_template knows.
	ErrUnsupportedChatTemplate = bridge.ErrUnsupportedChatTemplate
	// ErrReentrant: a token callback called a method that needs the
	// model's context (Predict, Eval, Embeddings, SaveState, ...) on the
	// *LLama that is calling it. Only TokenizeString, Detokenize,
	// TokenToPiece, ApplyChatTemplate, SetTokenCallback and Free (deferred
	// to the end of the call) may be used there.
	ErrReentrant = errors.New("llama: called from inside a token callback of the same model")
	// ErrStagedUnsupported: an option or call that the staged engine
	// cannot honour (e.g. a prompt cache file) in a staged mode; the
	// message names it. Mode llamacpp supports it.
	ErrStagedUnsupported = errors.New("not supported in the staged modes")
)
