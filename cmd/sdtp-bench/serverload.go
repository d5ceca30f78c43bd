package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"text/tabwriter"

	flag "github.com/spf13/pflag"

	"github.com/go-sdtp/sdtp/server/loadtest"
)

// runServerLoad is `sdtp-bench server-load [flags] URL`: a bounded load on
// a running OpenAI-compatible server (docs/SERVER.md).
func runServerLoad(args []string, stdout, stderr io.Writer) error {
	var c loadtest.Config
	fs := flag.NewFlagSet("sdtp-bench server-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.Chat, "chat", false, "send chat completions (one user message) instead of completions")
	fs.IntVar(&c.Clients, "clients", 8, "concurrent clients")
	fs.IntVar(&c.Requests, "requests", 10, "requests per client, one after the other")
	fs.IntVar(&c.Words, "prompt-words", 1200, "prompt length in words of --text (the report gives the server's token count)")
	fs.IntVar(&c.MaxTokens, "max-tokens", 16, "tokens generated per request")
	text := fs.String("text", "", "prompt source text file (default: seeded pseudo-words)")
	fs.StringVar(&c.Mode, "mode", "", "ask for this prefill mode in each request (\"sdtp\": {\"mode\": …}); default: the server's")
	fs.StringVar(&c.APIKey, "api-key", "", "bearer token for a server started with --api-key")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("server-load needs the server's base URL, e.g. http://127.0.0.1:8080")
	}
	c.URL = fs.Arg(0)
	if *text != "" {
		b, err := os.ReadFile(*text)
		if err != nil {
			return err
		}
		c.Text = string(b)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := loadtest.Run(ctx, c)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	mode := r.Mode
	if mode == "" {
		mode = "server default"
	}
	fmt.Fprintf(tw, "endpoint\t%s (%s), mode %s\n", r.Endpoint, r.URL, mode)
	fmt.Fprintf(tw, "load\t%d clients × %d requests, %.0f prompt tokens on average\n", r.Clients, r.Requests/r.Clients, r.PromptTokens)
	fmt.Fprintf(tw, "ok\t%d of %d in %.1f s\n", r.OK, r.Requests, r.WallSeconds)
	fmt.Fprintf(tw, "throughput\t%.2f requests/s, %.1f generated tokens/s\n", r.RequestsPerSec, r.TokensPerSec)
	fmt.Fprintf(tw, "TTFT\tp50 %.0f ms, p95 %.0f ms (server prefill p50 %.0f ms)\n", r.TTFTP50, r.TTFTP95, r.ServerPrefillMS)
	fmt.Fprintf(tw, "latency\tp50 %.0f ms, p95 %.0f ms\n", r.LatencyP50, r.LatencyP95)
	codes := make([]string, 0, len(r.Errors))
	for code := range r.Errors {
		codes = append(codes, code)
	}
	sort.Strings(codes)
	fmt.Fprint(tw, "errors\t")
	if len(codes) == 0 {
		fmt.Fprint(tw, "none")
	}
	for _, code := range codes {
		fmt.Fprintf(tw, "%s: %d  ", code, r.Errors[code])
	}
	fmt.Fprintln(tw)
	if r.RSSBefore > 0 {
		fmt.Fprintf(tw, "server RSS\t%.0f MiB before, %.0f MiB after\n", float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20))
	}
	return tw.Flush()
}
