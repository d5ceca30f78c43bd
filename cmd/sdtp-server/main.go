// Command sdtp-server serves a GGUF model over OpenAI's HTTP API with
// SDTP's pruned prefill (package server does the work):
//
//	sdtp-server -m qwen2.5-coder-0.5b-instruct --parallel 2 --port 8080
//	curl http://127.0.0.1:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
//
// SIGINT or SIGTERM stops it gracefully: new requests get 503, the ones in
// flight finish (up to --shutdown-timeout), then it exits.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/internal/cache"
	"github.com/go-sdtp/sdtp/internal/fetch"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
	"github.com/go-sdtp/sdtp/server"
)

type config struct {
	server.Config
	host            string
	port            int
	modeGiven       bool
	shutdownTimeout time.Duration
}

func main() {
	err := run(os.Args[1:], os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdtp-server:", err)
		os.Exit(1)
	}
}

// Flags are named as llama-server names them where it has them.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("sdtp-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVarP(&c.Model, "model", "m", cache.DefaultModel(), "GGUF model file, or a known model name ("+strings.Join(fetch.Names(), ", ")+"), fetched if missing")
	fs.StringVar(&c.ModelID, "alias", "", "model id reported by /v1/models and in responses (default: the file name)")
	fs.StringVar(&c.host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&c.port, "port", 8080, "port to listen on (0 = any free port)")
	fs.IntVarP(&c.CtxSize, "ctx-size", "c", 4096, "context window per slot in tokens (0 = the model's training context)")
	fs.IntVarP(&c.Threads, "threads", "t", 0, "CPU threads per slot (0 = all cores, or SDTP_THREADS)")
	fs.IntVar(&c.Parallel, "parallel", 1, "slots: requests served at once, one model context each")
	fs.IntVar(&c.Queue, "queue", 16, "requests that may wait for a slot; beyond that, 503 with Retry-After (0 = no waiting)")
	fs.StringVar(&c.APIKey, "api-key", "", "require \"Authorization: Bearer KEY\" on /v1/ requests")
	fs.Int64Var(&c.MaxBody, "max-body", server.DefaultMaxBody, "request body limit in bytes")
	fs.StringVar(&c.SDTP.Mode, "mode", llama.ModeSDTP, "default prefill: llamacpp (stock llama_decode), dense, sdtp (learned predictors fused with question attention at the retrieval schedule; question attention alone without predictors), learned (learned predictors alone), random, attention")
	fs.Float64Var(&c.SDTP.KeepRatio, "keep-ratio", sdtp.DefaultKeepRatio, "fraction of live tokens kept at each pruning stage; unset, the schedule's ratios (learned predictors: their trained ones; sdtp: the retrieval schedule's)")
	fs.StringVar(&c.SDTP.Predictors, "predictors", "", "learned predictors for --mode sdtp or learned: a `DIR` with predictors.json (default: heads in the GGUF, MODEL.predictors/, or the shipped set for the model)")
	fs.StringVar(&c.SDTP.ONNXProvider, "onnx-provider", "cpu", "where ONNX predictors run: cpu, cuda, coreml, auto")
	fs.StringVar(&c.SDTP.KVPolicy, "kv-policy", sdtp.KVNone, "KV-cache compression after the prefill and while generating: none, streaming, h2o, snapkv (staged modes; docs/KV.md)")
	fs.Float64Var(&c.SDTP.KVBudget, "kv-budget", 0.4, "cells each layer's cache keeps under --kv-policy: a fraction of the prompt if <= 1, else tokens")
	fs.StringSliceVar(&c.Modes, "allow-modes", server.AllModes(),
		"modes a request's \"sdtp\": {\"mode\": …} may ask for (switching a slot's mode rebuilds its engine)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", time.Minute, "how long requests in flight may take to finish after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.modeGiven = fs.Changed("mode")
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.port < 0 || c.port > 65535:
		return c, fmt.Errorf("--port %d: want 0..65535", c.port)
	case c.CtxSize < 0 || c.Threads < 0:
		return c, errors.New("--ctx-size and --threads must not be negative")
	case !(c.SDTP.KeepRatio > 0 && c.SDTP.KeepRatio <= 1):
		return c, fmt.Errorf("--keep-ratio %v: want (0, 1]", c.SDTP.KeepRatio)
	case fs.Changed("kv-budget") && c.SDTP.KVPolicy == sdtp.KVNone:
		return c, errors.New("--kv-budget needs a --kv-policy (streaming, h2o, snapkv)")
	}
	// Unset, they stay zero: learned predictors keep their trained ratios.
	if !fs.Changed("keep-ratio") {
		c.SDTP.KeepRatio = 0
	}
	if c.SDTP.KVPolicy == sdtp.KVNone {
		c.SDTP.KVBudget = 0
	}
	return c, nil
}

// run serves until SIGINT or SIGTERM. ready, when set, receives the
// address it listens on.
func run(args []string, stderr io.Writer, ready func(addr string)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(c.Model); err != nil && c.Model == cache.DefaultModel() {
		return fmt.Errorf("default model not found at %s: run `make deps` first, or pass -m MODEL.gguf", c.Model)
	}
	if _, err := os.Stat(c.Model); err != nil && c.ModelID == "" {
		c.ModelID = c.Model // a known name is the id clients see
	}
	if c.Model, err = fetch.ResolveModel(c.Model, stderr); err != nil {
		return err
	}
	c.Log = func(format string, args ...any) { fmt.Fprintf(stderr, "sdtp-server: "+format+"\n", args...) }
	srv, err := load(c, stderr)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", net.JoinHostPort(c.host, strconv.Itoa(c.port)))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(stderr, "sdtp-server: %s, %d slot(s), mode %s: listening on http://%s\n", c.Model, c.Parallel, c.SDTP.Mode, ln.Addr())
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "sdtp-server: shutting down: new requests get 503; waiting for those in flight")
	grace, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	drainErr := srv.Shutdown(grace)
	if err := hs.Shutdown(grace); err != nil {
		hs.Close()
	}
	if drainErr != nil {
		return fmt.Errorf("requests still running after --shutdown-timeout %v", c.shutdownTimeout)
	}
	return nil
}

// load starts the server in c's mode. When the architecture cannot be
// pruned, the default mode falls back to llama.cpp's own prefill with a
// notice (as sdtp-run does); a pruning mode asked for with --mode is an
// error.
func load(c config, stderr io.Writer) (*server.Server, error) {
	srv, err := server.New(c.Config)
	if !errors.Is(err, llama.ErrUnsupportedArch) || c.modeGiven || c.SDTP.KVPolicy != sdtp.KVNone {
		return srv, err
	}
	fmt.Fprintf(stderr, "sdtp-server: %v\nsdtp-server: serving with --mode llamacpp (no pruning)\n", err)
	c.SDTP.Mode = llama.ModeLlamaCpp
	c.Modes = []string{llama.ModeLlamaCpp}
	return server.New(c.Config)
}
