// Package server serves a GGUF model over OpenAI's HTTP API
// (chat completions, completions, models) with SDTP's pruned prefill:
// an http.Handler a Go program can embed, and the library behind
// cmd/sdtp-server.
//
// Requests run on --parallel slots, one model context (*llama.LLama) each.
// A request goes to the idle slot whose previous request shares the longest
// prefix with it, so follow-up turns of a conversation reuse that slot's KV
// cache; when all slots are busy it waits in a bounded FIFO queue, and when
// the queue is full it gets 503 with Retry-After. A client that disconnects
// cancels its request, in the queue or in the middle of its prefill.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Config sets up a Server. Zero values are values: Queue 0 means no
// waiting (503 whenever all slots are busy).
type Config struct {
	Model    string // GGUF path
	ModelID  string // the id /v1/models reports; "" = the file name without .gguf
	Parallel int    // slots, each one model context; >= 1
	Queue    int    // requests that may wait for a slot; >= 0
	CtxSize  int    // context window per slot in tokens; 0 = the model's training context
	Threads  int    // CPU threads per slot; 0 = all cores (capped by SDTP_THREADS)
	APIKey   string // when set, /v1/ requests need "Authorization: Bearer APIKey"
	MaxBody  int64  // request body limit in bytes; 0 = DefaultMaxBody
	// SDTP are the pruning settings: SDTP.Mode is the default mode, and
	// a request in another mode gets the settings that apply to it (the
	// predictors only in mode sdtp, no KV policy in mode llamacpp, …).
	SDTP      llama.SDTPOptions
	Modes     []string // modes a request's "sdtp" object may ask for; nil = SDTP.Mode only
	ModelOpts []llama.ModelOption
	// Log receives one line per request error that is the server's fault;
	// nil = no logging.
	Log func(format string, args ...any)
}

// AllModes are the prefill modes a server may allow requests to ask for.
func AllModes() []string {
	return []string{llama.ModeLlamaCpp, llama.ModeDense, llama.ModeSDTP, llama.ModeLearned, llama.ModeRandom, llama.ModeAttention}
}

// DefaultMaxBody is the request body limit when Config.MaxBody is 0.
const DefaultMaxBody = 8 << 20

// Server is the http.Handler. Close frees its models.
type Server struct {
	cfg      Config
	id       string
	created  int64
	pool     *pool
	metrics  *metrics
	mux      *http.ServeMux
	draining atomic.Bool
	inflight atomic.Int64 // /v1/ requests being served
}

// New loads cfg.Parallel model contexts. Each loads the GGUF on its own;
// with mmap (the default) the weights' pages are shared through the page
// cache, so each further slot costs its KV cache and compute buffers.
func New(cfg Config) (*Server, error) {
	if cfg.Parallel < 1 {
		return nil, fmt.Errorf("server: parallel %d: want at least one slot", cfg.Parallel)
	}
	if cfg.Queue < 0 {
		return nil, fmt.Errorf("server: queue %d is negative", cfg.Queue)
	}
	if cfg.MaxBody < 0 {
		return nil, fmt.Errorf("server: body limit %d is negative", cfg.MaxBody)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.SDTP.Mode == "" {
		cfg.SDTP.Mode = llama.ModeLlamaCpp
	}
	if cfg.SDTP.KVPolicy == "" {
		cfg.SDTP.KVPolicy = sdtp.KVNone
	}
	if cfg.Modes == nil {
		cfg.Modes = []string{cfg.SDTP.Mode}
	}
	for _, m := range cfg.Modes {
		if !slices.Contains(AllModes(), m) {
			return nil, fmt.Errorf("server: unknown mode %q among the allowed modes (%s)", m, strings.Join(AllModes(), ", "))
		}
	}
	if !slices.Contains(cfg.Modes, cfg.SDTP.Mode) {
		return nil, fmt.Errorf("server: the default mode %s is not among the allowed modes %v", cfg.SDTP.Mode, cfg.Modes)
	}
	s := &Server{cfg: cfg, id: cfg.ModelID, created: time.Now().Unix()}
	if s.id == "" {
		s.id = strings.TrimSuffix(filepath.Base(cfg.Model), ".gguf")
	}
	s.metrics = newMetrics(cfg.Parallel)
	def := s.settings(cfg.SDTP.Mode, 0)
	opts := append([]llama.ModelOption{llama.SetContext(cfg.CtxSize), llama.WithSDTP(def)}, cfg.ModelOpts...)
	var slots []*slot
	for i := range cfg.Parallel {
		l, err := llama.New(cfg.Model, opts...)
		if err != nil {
			for _, sl := range slots {
				sl.l.Free()
			}
			return nil, fmt.Errorf("server: slot %d: %w", i, err)
		}
		slots = append(slots, &slot{id: i, l: l, sdtp: def})
	}
	s.pool = newPool(slots, cfg.Queue, func(waiting, busy int) {
		s.metrics.queue.Set(float64(waiting))
		s.metrics.busy.Set(float64(busy))
	})
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	api := func(pattern, name string, h http.HandlerFunc) {
		s.mux.Handle(pattern, s.metrics.instrument(name, s.guard(h)))
	}
	api("POST /v1/chat/completions", "chat_completions", s.chatCompletions)
	api("POST /v1/completions", "completions", s.completions)
	api("GET /v1/models", "models", s.models)
	s.mux.Handle("GET /health", s.metrics.instrument("health", http.HandlerFunc(s.health)))
	s.mux.Handle("GET /metrics", s.metrics.handler())
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// guard applies to every /v1/ request: 503 while shutting down, the API
// key, the body limit, and the in-flight count Shutdown waits for.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIKey != "" {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.APIKey)) != 1 {
				writeError(w, http.StatusUnauthorized, "authentication_error", "invalid API key: send Authorization: Bearer KEY")
				return
			}
		}
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusServiceUnavailable, "unavailable_error", "server is shutting down")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
		h(w, r)
	}
}

// Shutdown makes new requests fail with 503 and waits until the ones in
// flight finish or ctx ends. The caller then stops its http.Server and
// calls Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close frees the models. Requests must have finished (Shutdown).
func (s *Server) Close() {
	for _, sl := range s.pool.slots {
		sl.l.Free()
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "unavailable_error", "server is shutting down")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, modelList{Object: "list",
		Data: []modelInfo{{ID: s.id, Object: "model", Created: s.created, OwnedBy: "sdtp-server"}}})
}

// decode reads a JSON body into v; the error is the 400 or 413 to send.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error",
				fmt.Sprintf("request body over the limit of %d bytes", tooBig.Limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	writeJSON(w, code, e)
}
