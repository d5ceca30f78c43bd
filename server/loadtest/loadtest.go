// Package loadtest drives an OpenAI-compatible server (sdtp-server,
// llama-server, ollama) with a bounded, closed-loop load: Clients
// concurrent clients each send Requests streamed requests one after the
// other, every one with its own long prompt (no two share a prefix, so no
// request is served from another's cache). It reports throughput,
// time-to-first-token percentiles, errors by status, and the server's
// resident memory before and after (from its /metrics, when it exports
// process_resident_memory_bytes). A warm-up round of one request per
// client, not counted, goes first, so "before" is measured once the
// server's buffers have grown to their working size.
package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config is one load run.
type Config struct {
	URL       string // server base URL, e.g. http://127.0.0.1:8080
	Chat      bool   // /v1/chat/completions (one user message) instead of /v1/completions
	Clients   int    // concurrent clients
	Requests  int    // requests per client
	Words     int    // prompt length in words of Text (tokens are reported from the server's usage)
	MaxTokens int    // tokens generated per request
	Text      string // prompt source; "" = seeded pseudo-words
	Mode      string // "" = the server's default; else sent as "sdtp": {"mode": Mode}
	APIKey    string
}

// Report is what a run measured. Durations are in milliseconds.
type Report struct {
	URL             string         `json:"url"`
	Endpoint        string         `json:"endpoint"`
	Mode            string         `json:"mode,omitempty"`
	Clients         int            `json:"clients"`
	Requests        int            `json:"requests"`
	OK              int            `json:"ok"`
	Errors          map[string]int `json:"errors,omitempty"` // by HTTP status, or "transport"
	WallSeconds     float64        `json:"wall_seconds"`
	RequestsPerSec  float64        `json:"requests_per_second"`
	TokensPerSec    float64        `json:"generated_tokens_per_second"`
	PromptTokens    float64        `json:"mean_prompt_tokens"`
	TTFTP50         float64        `json:"ttft_p50_ms"`
	TTFTP95         float64        `json:"ttft_p95_ms"`
	LatencyP50      float64        `json:"latency_p50_ms"`
	LatencyP95      float64        `json:"latency_p95_ms"`
	ServerPrefillMS float64        `json:"server_prefill_p50_ms"` // from the usage blocks' sdtp.prefill_ms
	RSSBefore       int64          `json:"rss_before_bytes,omitempty"`
	RSSAfter        int64          `json:"rss_after_bytes,omitempty"`
}

// result is one request's outcome.
type result struct {
	status             string // "" = OK
	ttft, latency      time.Duration
	prompt, completion int
	prefillMS          float64
}

// Run sends the load and waits for it to finish (or ctx to end).
func Run(ctx context.Context, c Config) (Report, error) {
	if c.Clients < 1 || c.Requests < 1 || c.Words < 1 || c.MaxTokens < 1 {
		return Report{}, errors.New("loadtest: clients, requests, words and max tokens must be at least 1")
	}
	c.URL = strings.TrimSuffix(c.URL, "/")
	r := Report{URL: c.URL, Endpoint: "/v1/completions", Mode: c.Mode, Clients: c.Clients, Requests: c.Clients * c.Requests}
	if c.Chat {
		r.Endpoint = "/v1/chat/completions"
	}
	words := strings.Fields(c.Text)
	if len(words) == 0 {
		words = pseudoWords(200_000)
	}
	if len(words) < c.Words {
		return r, fmt.Errorf("loadtest: the text has %d words, fewer than one prompt of %d", len(words), c.Words)
	}
	// Prompt n starts at its own place in the text; the warm-up round
	// uses the numbers after the measured ones.
	prompt := func(n int) string {
		from := n * 7919 * c.Words / 10 % (len(words) - c.Words + 1)
		return strings.Join(words[from:from+c.Words], " ")
	}
	load := func(perClient, first int) ([]result, time.Duration) {
		results := make([]result, c.Clients*perClient)
		var wg sync.WaitGroup
		start := time.Now()
		for client := range c.Clients {
			wg.Go(func() {
				for i := range perClient {
					n := client*perClient + i
					results[n] = send(ctx, c, r.Endpoint, prompt(first+n))
				}
			})
		}
		wg.Wait()
		return results, time.Since(start)
	}
	if _, err := rss(ctx, c.URL); err != nil {
		return r, err
	}
	load(1, r.Requests)
	var err error
	if r.RSSBefore, err = rss(ctx, c.URL); err != nil {
		return r, err
	}
	results, wall := load(c.Requests, 0)
	r.WallSeconds = wall.Seconds()
	if r.RSSAfter, err = rss(ctx, c.URL); err != nil {
		return r, err
	}
	summarize(&r, results)
	return r, ctx.Err()
}

func summarize(r *Report, results []result) {
	var ttft, lat, prefill []float64
	generated := 0
	for _, res := range results {
		if res.status != "" {
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			r.Errors[res.status]++
			continue
		}
		r.OK++
		ttft = append(ttft, ms(res.ttft))
		lat = append(lat, ms(res.latency))
		prefill = append(prefill, res.prefillMS)
		generated += res.completion
		r.PromptTokens += float64(res.prompt)
	}
	if r.OK > 0 {
		r.PromptTokens /= float64(r.OK)
	}
	r.RequestsPerSec = float64(r.OK) / r.WallSeconds
	r.TokensPerSec = float64(generated) / r.WallSeconds
	r.TTFTP50, r.TTFTP95 = percentile(ttft, 50), percentile(ttft, 95)
	r.LatencyP50, r.LatencyP95 = percentile(lat, 50), percentile(lat, 95)
	r.ServerPrefillMS = percentile(prefill, 50)
}

// send makes one streamed request and times its first content chunk.
func send(ctx context.Context, c Config, endpoint, prompt string) result {
	body := map[string]any{"model": "default", "stream": true, "max_tokens": c.MaxTokens, "temperature": 0,
		"stream_options": map[string]any{"include_usage": true}}
	if c.Chat {
		body["messages"] = []map[string]string{{"role": "user", "content": prompt}}
	} else {
		body["prompt"] = prompt
	}
	if c.Mode != "" {
		body["sdtp"] = map[string]string{"mode": c.Mode}
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+endpoint, bytes.NewReader(b))
	if err != nil {
		return result{status: "transport"}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{status: "transport"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return result{status: strconv.Itoa(resp.StatusCode)}
	}
	res := result{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ch chunk
		if err := json.Unmarshal([]byte(data), &ch); err != nil || ch.Error != nil {
			return result{status: "stream error"}
		}
		if res.ttft == 0 && ch.hasText() {
			res.ttft = time.Since(start)
		}
		if u := ch.Usage; u != nil {
			res.prompt, res.completion, res.prefillMS = u.PromptTokens, u.CompletionTokens, u.SDTP.PrefillMS
		}
	}
	if !done {
		return result{status: "truncated stream"}
	}
	res.latency = time.Since(start)
	if res.ttft == 0 { // nothing generated: the first token was end-of-text
		res.ttft = res.latency
	}
	return res
}

// chunk is the part of a streamed chunk (chat or completion) the test reads.
type chunk struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		SDTP             struct {
			PrefillMS float64 `json:"prefill_ms"`
		} `json:"sdtp"`
	} `json:"usage"`
	Error *json.RawMessage `json:"error"`
}

func (c chunk) hasText() bool {
	return len(c.Choices) > 0 && (c.Choices[0].Text != "" || c.Choices[0].Delta.Content != "")
}

// rss reads process_resident_memory_bytes from the server's /metrics; 0
// when the server does not export it.
func rss(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("loadtest: server unreachable: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, sc.Err()
}

// percentile is the nearest-rank p-th percentile of v (0 for none).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pseudoWords is a seeded stream of short lowercase words: prompts with
// no repeated prefix, when no text is given.
func pseudoWords(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "etaoinshrdlucmfwypvbgk"
	out := make([]string, n)
	for i := range out {
		b := make([]byte, 2+rng.IntN(6))
		for j := range b {
			b[j] = letters[rng.IntN(len(letters))]
		}
		out[i] = string(b)
	}
	return out
}
