package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/llama"
	"github.com/go-sdtp/sdtp/sdtp"
)

// Tiny random-weight models: a qwen2 with a ChatML template (and its
// control tokens) for the API tests, and a wider 8-layer llama whose long
// prefill takes seconds, for cancelling one mid-way.
var tiny struct{ chat, slow string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sdtp-server-test")
	if err != nil {
		panic(err)
	}
	tiny.chat = filepath.Join(dir, "chat.gguf")
	tiny.slow = filepath.Join(dir, "slow.gguf")
	slow := testmodel.Llama()
	slow.NLayer, slow.NEmbd, slow.HeadDim, slow.NFF, slow.ContextLength = 8, 256, 64, 1024, 8192
	for path, cfg := range map[string]testmodel.Config{tiny.chat: testmodel.Qwen2Chat(), tiny.slow: slow} {
		if err := testmodel.Write(path, cfg); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// start serves cfg (on the tiny chat model unless cfg.Model is set) on a random
// loopback port and returns the server and its base URL.
func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = tiny.chat
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 1
	}
	if cfg.CtxSize == 0 {
		cfg.CtxSize = 512
	}
	if cfg.SDTP.Mode == "" {
		cfg.SDTP = llama.SDTPOptions{Mode: llama.ModeSDTP} // question attention alone: the tiny model has no predictors
		cfg.Modes = []string{llama.ModeSDTP, llama.ModeLlamaCpp, llama.ModeDense}
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return srv, ts.URL
}

func client(url string, opts ...option.RequestOption) *openai.Client {
	c := openai.NewClient(append([]option.RequestOption{option.WithBaseURL(url + "/v1/"),
		option.WithAPIKey("unused"), option.WithMaxRetries(0)}, opts...)...)
	return &c
}

const question = "Write a short poem about the sea and the ships that sail on it."

// sdtpUsage reads the "sdtp" object of a usage block.
func sdtpOf(t *testing.T, raw string) sdtpUsage {
	t.Helper()
	var u sdtpUsage
	require.NotEmpty(t, raw, "usage has an sdtp object")
	require.NoError(t, json.Unmarshal([]byte(raw), &u))
	return u
}

// A chat completion and the same request streamed give the same greedy
// text; the usage block carries the token counts and the sdtp object. Run
// in the server's default mode (sdtp) and with a per-request override.
func TestChatCompletionStreamedMatches(t *testing.T) {
	_, url := start(t, Config{})
	c := client(url)
	ctx := context.Background()
	for _, mode := range []string{llama.ModeSDTP, llama.ModeLlamaCpp} {
		t.Run(mode, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:       "tiny",
				Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage(question)},
				Temperature: openai.Float(0),
				MaxTokens:   openai.Int(24),
			}
			override := option.WithJSONSet("sdtp", map[string]any{"mode": mode})
			resp, err := c.Chat.Completions.New(ctx, params, override)
			require.NoError(t, err)
			require.Len(t, resp.Choices, 1)
			text := resp.Choices[0].Message.Content
			assert.Equal(t, "chat.completion", string(resp.Object))
			assert.Equal(t, "assistant", string(resp.Choices[0].Message.Role))
			assert.Positive(t, resp.Usage.PromptTokens)
			assert.Positive(t, resp.Usage.CompletionTokens)
			assert.Equal(t, resp.Usage.PromptTokens+resp.Usage.CompletionTokens, resp.Usage.TotalTokens)
			if resp.Usage.CompletionTokens == 24 {
				assert.Equal(t, "length", resp.Choices[0].FinishReason)
			} else {
				assert.Equal(t, "stop", resp.Choices[0].FinishReason)
			}
			st := sdtpOf(t, resp.Usage.JSON.ExtraFields["sdtp"].Raw())
			assert.Equal(t, mode, st.Mode)
			assert.Positive(t, st.PrefillMS)
			if mode == llama.ModeSDTP {
				assert.NotEmpty(t, st.KeptPerStage)
				assert.Equal(t, "attention-acc", st.Scorer, "the tiny model has no predictors")
				assert.Positive(t, st.PrunedTokens, "the question attention pruned the prompt")
				assert.Greater(t, st.FLOPRatio, 1.0)
			} else {
				assert.Equal(t, 1.0, st.FLOPRatio)
			}

			stream := c.Chat.Completions.NewStreaming(ctx, params, override)
			var joined strings.Builder
			var finish string
			var chunks int
			var usage openai.CompletionUsage
			for stream.Next() {
				ch := stream.Current()
				assert.Equal(t, "chat.completion.chunk", string(ch.Object))
				if len(ch.Choices) > 0 {
					joined.WriteString(ch.Choices[0].Delta.Content)
					if ch.Choices[0].FinishReason != "" {
						finish = ch.Choices[0].FinishReason
					}
				}
				if ch.Usage.TotalTokens > 0 {
					usage = ch.Usage
				}
				chunks++
			}
			require.NoError(t, stream.Err())
			require.NoError(t, stream.Close())
			assert.Equal(t, text, joined.String(), "streamed chunks join to the non-streamed text")
			assert.Equal(t, resp.Choices[0].FinishReason, finish)
			assert.Greater(t, chunks, 2, "role, content and final chunks")
			assert.Equal(t, resp.Usage.CompletionTokens, usage.CompletionTokens)
			assert.Equal(t, resp.Usage.PromptTokens, usage.PromptTokens)
		})
	}
}

// The raw stream is OpenAI's: data lines ending with "data: [DONE]"; the
// usage rides on the last chunk, or with stream_options.include_usage on a
// chunk of its own with no choices.
func TestStreamFormat(t *testing.T) {
	_, url := start(t, Config{})
	for _, includeUsage := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"x","stream":true,"temperature":0,"max_tokens":4,"stream_options":{"include_usage":%v},
			"messages":[{"role":"user","content":"Hi"}]}`, includeUsage)
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		events := strings.Split(strings.TrimSpace(string(b)), "\n\n")
		for _, e := range events {
			assert.True(t, strings.HasPrefix(e, "data: "), "%q", e)
		}
		require.Greater(t, len(events), 3)
		assert.Equal(t, "data: [DONE]", events[len(events)-1])
		var last, before chatCompletion
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(events[len(events)-2], "data: ")), &last))
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(events[len(events)-3], "data: ")), &before))
		require.NotNil(t, last.Usage)
		assert.Positive(t, last.Usage.PromptTokens)
		if includeUsage {
			assert.Empty(t, last.Choices)
			assert.Nil(t, before.Usage)
			require.Len(t, before.Choices, 1)
			assert.NotNil(t, before.Choices[0].FinishReason)
		} else {
			require.Len(t, last.Choices, 1)
			assert.NotNil(t, last.Choices[0].FinishReason)
		}
	}
}

func TestCompletion(t *testing.T) {
	_, url := start(t, Config{})
	c := client(url)
	params := openai.CompletionNewParams{
		Model:       "tiny",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		Temperature: openai.Float(0),
		MaxTokens:   openai.Int(10),
	}
	resp, err := c.Completions.New(context.Background(), params)
	require.NoError(t, err)
	require.Len(t, resp.Choices, 1)
	assert.Equal(t, "text_completion", string(resp.Object))
	assert.NotEmpty(t, resp.Choices[0].Text)
	assert.Positive(t, resp.Usage.PromptTokens)
	assert.Equal(t, llama.ModeSDTP, sdtpOf(t, resp.Usage.JSON.ExtraFields["sdtp"].Raw()).Mode)

	stream := c.Completions.NewStreaming(context.Background(), params)
	var joined strings.Builder
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			joined.WriteString(ch.Choices[0].Text)
		}
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, resp.Choices[0].Text, joined.String())
}

func TestModelsList(t *testing.T) {
	_, url := start(t, Config{ModelID: "tiny-chat"})
	c := client(url)
	page, err := c.Models.List(context.Background())
	require.NoError(t, err)
	require.Len(t, page.Data, 1)
	assert.Equal(t, "tiny-chat", page.Data[0].ID)
	assert.Equal(t, "model", string(page.Data[0].Object))

	resp, err := http.Get(url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// post sends a raw body and returns the status and the OpenAI error body.
func post(t *testing.T, url, path, body string, header ...string) (int, apiError, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var e apiError
	if resp.StatusCode != http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e), "an OpenAI-style error body")
	}
	return resp.StatusCode, e, resp.Header
}

func TestBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no slots":           {Model: tiny.chat, Parallel: 0},
		"negative queue":     {Model: tiny.chat, Parallel: 1, Queue: -1},
		"unknown mode":       {Model: tiny.chat, Parallel: 1, Modes: []string{"llamacpp", "fast"}},
		"default disallowed": {Model: tiny.chat, Parallel: 1, SDTP: llama.SDTPOptions{Mode: llama.ModeSDTP}, Modes: []string{"llamacpp"}},
		"missing model":      {Model: filepath.Join(os.TempDir(), "no-such-model.gguf"), Parallel: 1},
	} {
		_, err := New(cfg)
		assert.Error(t, err, name)
	}
}

func TestBadRequests(t *testing.T) {
	_, url := start(t, Config{CtxSize: 128, MaxBody: 4096})
	long := strings.Repeat("the sea and the ships ", 100)
	for name, tc := range map[string]struct {
		path, body string
		code       int
		msg        string
	}{
		"malformed JSON":  {"/v1/chat/completions", `{"messages": [`, 400, "malformed JSON"},
		"wrong type":      {"/v1/chat/completions", `{"messages": "hi"}`, 400, "malformed JSON"},
		"unknown role":    {"/v1/chat/completions", `{"messages": [{"role": "wizard", "content": "hi"}]}`, 400, "unknown role"},
		"empty messages":  {"/v1/chat/completions", `{"messages": []}`, 400, "at least one message"},
		"no messages":     {"/v1/chat/completions", `{"model": "x"}`, 400, "at least one message"},
		"image content":   {"/v1/chat/completions", `{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`, 400, "only text"},
		"n > 1":           {"/v1/chat/completions", `{"n": 2, "messages": [{"role": "user", "content": "hi"}]}`, 400, "n=1"},
		"zero max tokens": {"/v1/chat/completions", `{"max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}`, 400, "max_tokens"},
		"temperature":     {"/v1/completions", `{"prompt": "hi", "temperature": 3}`, 400, "temperature"},
		"mode not allowed": {"/v1/completions", `{"prompt": "hi", "sdtp": {"mode": "random"}}`, 400,
			"not allowed"},
		"keep ratio":         {"/v1/completions", `{"prompt": "hi", "sdtp": {"keep_ratio": 1.5}}`, 400, "keep_ratio"},
		"keep ratio, dense":  {"/v1/completions", `{"prompt": "hi", "sdtp": {"mode": "dense", "keep_ratio": 0.5}}`, 400, "does not prune"},
		"empty prompt":       {"/v1/completions", `{"prompt": ""}`, 400, "prompt"},
		"prompt too long":    {"/v1/completions", `{"prompt": "` + long + `"}`, 400, "prompt too long"},
		"chat too long":      {"/v1/chat/completions", `{"messages": [{"role": "user", "content": "` + long + `"}]}`, 400, "prompt too long"},
		"body over limit":    {"/v1/completions", `{"prompt": "` + strings.Repeat("x", 5000) + `"}`, 413, "over the limit"},
		"unknown route":      {"/v1/embeddings", `{}`, 404, "no route"},
		"unknown fields too": {"/v1/completions", `{"prompt": "hi", "max_tokens": 2, "logit_bias": {}, "user": "u", "sdtp": {"extra": 1}}`, 200, ""},
	} {
		t.Run(name, func(t *testing.T) {
			code, e, _ := post(t, url, tc.path, tc.body)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, e.Error.Message, tc.msg)
			if code == 400 {
				assert.Equal(t, "invalid_request_error", e.Error.Type)
			}
		})
	}

	// The official client sees the 400 as an *openai.Error.
	_, err := client(url).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "x", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(long)}})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	assert.Contains(t, apiErr.Message, "prompt too long")
}

func TestAPIKey(t *testing.T) {
	_, url := start(t, Config{APIKey: "s3cret"})
	params := openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(2),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")}}

	_, err := client(url, option.WithAPIKey("wrong")).Completions.New(context.Background(), params)
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
	assert.Equal(t, "authentication_error", apiErr.Type)
	_, err = client(url, option.WithAPIKey("wrong")).Models.List(context.Background())
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)

	_, err = client(url, option.WithAPIKey("s3cret")).Completions.New(context.Background(), params)
	require.NoError(t, err)
	resp, err := http.Get(url + "/health") // health and metrics stay open, as in llama-server
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// hold takes the server's only slot, as a long request would.
func hold(t *testing.T, srv *Server) *slot {
	t.Helper()
	sl, err := srv.pool.acquire(context.Background(), "", srv.cfg.SDTP)
	require.NoError(t, err)
	return sl
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 2*time.Millisecond, what)
}

func (p *pool) depth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// With the slot busy, one request waits in the queue (--queue 1) and the
// next gets 503 with Retry-After; the waiting one completes once the slot
// is free.
func TestQueueFull(t *testing.T) {
	srv, url := start(t, Config{Queue: 1})
	sl := hold(t, srv)
	queued := make(chan int, 1)
	go func() {
		code, _, _ := post(t, url, "/v1/completions", `{"prompt": "Hello", "max_tokens": 2}`)
		queued <- code
	}()
	waitFor(t, "a request waits in the queue", func() bool { return srv.pool.depth() == 1 })

	code, e, h := post(t, url, "/v1/completions", `{"prompt": "Hello", "max_tokens": 2}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, e.Error.Message, "queue is full")
	assert.NotEmpty(t, h.Get("Retry-After"))

	_, err := client(url).Completions.New(context.Background(), openai.CompletionNewParams{Model: "x",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")}})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)

	srv.pool.release(sl, time.Second)
	assert.Equal(t, http.StatusOK, <-queued)
}

// Shutdown: new requests get 503 at once; the one in flight finishes.
func TestShutdownFinishesInFlight(t *testing.T) {
	srv, url := start(t, Config{Queue: 4})
	sl := hold(t, srv)
	inFlight := make(chan int, 1)
	go func() {
		code, _, _ := post(t, url, "/v1/completions", `{"prompt": "Hello", "max_tokens": 2}`)
		inFlight <- code
	}()
	waitFor(t, "the request waits for the slot", func() bool { return srv.pool.depth() == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(context.Background()) }()
	waitFor(t, "draining", srv.draining.Load)

	code, e, _ := post(t, url, "/v1/completions", `{"prompt": "Hello", "max_tokens": 2}`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, e.Error.Message, "shutting down")
	select {
	case <-stopped:
		t.Fatal("Shutdown returned with a request in flight")
	case <-time.After(50 * time.Millisecond):
	}
	srv.pool.release(sl, time.Second)
	assert.Equal(t, http.StatusOK, <-inFlight)
	require.NoError(t, <-stopped)
}

// A follow-up turn of a conversation goes to the slot that served the
// previous turn, past a request of another conversation, and reuses its
// KV cache: llama.cpp's, or the staged engine's pruned caches.
func TestFollowUpTurnReusesSlot(t *testing.T) {
	for _, mode := range []string{llama.ModeLlamaCpp, llama.ModeSDTP} {
		t.Run(mode, func(t *testing.T) {
			_, url := start(t, Config{Parallel: 2, SDTP: llama.SDTPOptions{Mode: mode}})
			c := client(url)
			ctx := context.Background()
			turn := func(msgs ...openai.ChatCompletionMessageParamUnion) (string, sdtpUsage, int64) {
				resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "x", Messages: msgs,
					Temperature: openai.Float(0), MaxTokens: openai.Int(8)})
				require.NoError(t, err)
				return resp.Choices[0].Message.Content, sdtpOf(t, resp.Usage.JSON.ExtraFields["sdtp"].Raw()), resp.Usage.PromptTokensDetails.CachedTokens
			}
			first := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(question)}
			answer, u1, _ := turn(first...)
			_, other, _ := turn(openai.UserMessage("Something else entirely: list three colours."))
			assert.NotEqual(t, u1.Slot, other.Slot, "the other conversation takes the other slot")
			_, u2, cached := turn(append(first, openai.AssistantMessage(answer), openai.UserMessage("Now shorter."))...)
			assert.Equal(t, u1.Slot, u2.Slot, "the follow-up lands on the first conversation's slot")
			assert.Positive(t, cached, "its prompt prefix comes from the slot's KV cache")
		})
	}
}

// A client that disconnects in the middle of a long prefill frees its slot
// long before that prefill would have finished, in both generation paths.
func TestClientKilledMidPrefillFreesSlot(t *testing.T) {
	srv, url := start(t, Config{Model: tiny.slow, CtxSize: 8192, Modes: []string{llama.ModeLlamaCpp, llama.ModeAttention},
		SDTP: llama.SDTPOptions{Mode: llama.ModeLlamaCpp}})
	c := client(url)
	// The prefill rate, from a 1-batch prompt of other text; the long
	// prompt costs at least its share of tokens times that.
	calib, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(1),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(strings.Repeat("numbers one two three ", 60))}})
	require.NoError(t, err)
	perToken := time.Duration(sdtpOf(t, calib.Usage.JSON.ExtraFields["sdtp"].Raw()).PrefillMS*float64(time.Millisecond)) /
		time.Duration(calib.Usage.PromptTokens)
	long := strings.Repeat("the sea and the ships that sail on it ", 480) // 6700 tokens
	for _, mode := range []string{llama.ModeLlamaCpp, llama.ModeAttention} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(1),
					Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(long)}},
					option.WithJSONSet("sdtp", map[string]any{"mode": mode}))
				done <- err
			}()
			waitFor(t, "the request holds the slot", srv.pool.busy)
			full := perToken * 6000 // the long prompt is over 6000 tokens
			time.Sleep(full / 10)
			require.Empty(t, done, "the request is still in its prefill")
			cancel()
			cancelled := time.Now()
			waitFor(t, "the slot is free", func() bool { return !srv.pool.busy() })
			freed := time.Since(cancelled)
			t.Logf("slot free %v after the cancel; the whole prefill takes over %v", freed, full)
			assert.Less(t, freed, full/3, "the prefill stopped at the cancel")
			require.ErrorIs(t, <-done, context.Canceled)
		})
	}
	// Both were counted as cancelled in the prefill, and the slot serves
	// the next request.
	mf, err := srv.metrics.reg.Gather()
	require.NoError(t, err)
	var inPrefill float64
	for _, f := range mf {
		if f.GetName() == "sdtp_requests_cancelled_total" {
			for _, m := range f.GetMetric() {
				if m.GetLabel()[0].GetValue() == "prefill" {
					inPrefill = m.GetCounter().GetValue()
				}
			}
		}
	}
	assert.Equal(t, 2.0, inPrefill)
	_, err = c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(1),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")}})
	require.NoError(t, err)
}

func TestMetrics(t *testing.T) {
	_, url := start(t, Config{})
	_, err := client(url).Completions.New(context.Background(), openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(3),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(question)}})
	require.NoError(t, err)
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	text := string(b)
	for _, want := range []string{
		`sdtp_requests_total{code="200",handler="completions",method="post"} 1`,
		"sdtp_prompt_tokens_total ", "sdtp_generated_tokens_total ", "sdtp_pruned_tokens_total ",
		`sdtp_prefill_seconds_count{mode="sdtp"} 1`, "sdtp_decode_seconds_count 1",
		"sdtp_queue_depth 0", "sdtp_slots_busy 0", "process_resident_memory_bytes ",
	} {
		assert.Contains(t, text, want)
	}
	assert.NotContains(t, text, "sdtp_pruned_tokens_total 0\n", "the question attention pruned")
}

// A request's keep ratio overrides the server's for that request only.
func TestKeepRatioOverride(t *testing.T) {
	_, url := start(t, Config{})
	c := client(url)
	complete := func(opts ...option.RequestOption) sdtpUsage {
		resp, err := c.Completions.New(context.Background(), openai.CompletionNewParams{Model: "x", MaxTokens: openai.Int(2),
			Temperature: openai.Float(0), Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(strings.Repeat(question, 4))}}, opts...)
		require.NoError(t, err)
		return sdtpOf(t, resp.Usage.JSON.ExtraFields["sdtp"].Raw())
	}
	def := complete()
	half := complete(option.WithJSONSet("sdtp", map[string]any{"keep_ratio": 0.5}))
	after := complete()
	paper, err := sdtp.DefaultSchedule(4, sdtp.DefaultKeepRatio) // the tiny chat model's 4 layers
	require.NoError(t, err)
	retrieval, err := sdtp.RetrievalSchedule(paper, 4)
	require.NoError(t, err)
	assert.Equal(t, retrieval.KeepRatios[0], def.KeepRatio, "mode sdtp: the retrieval schedule's ratio")
	assert.Equal(t, 0.5, half.KeepRatio)
	assert.Greater(t, half.PrunedTokens, def.PrunedTokens)
	assert.Greater(t, half.FLOPRatio, def.FLOPRatio)
	assert.Equal(t, def, withTimes(after, def), "the next request is back on the server's settings")
}

// withTimes copies the timings of b into a, for comparing the rest.
func withTimes(a, b sdtpUsage) sdtpUsage {
	a.PrefillMS, a.DecodeMS, a.Slot = b.PrefillMS, b.DecodeMS, b.Slot
	return a
}

// A client that gives up while queued leaves the queue.
func TestClientGoneFromQueue(t *testing.T) {
	srv, url := start(t, Config{Queue: 2})
	sl := hold(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := client(url).Completions.New(ctx, openai.CompletionNewParams{Model: "x",
			Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Hello")}})
		done <- err
	}()
	waitFor(t, "the request is queued", func() bool { return srv.pool.depth() == 1 })
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	waitFor(t, "the queue is empty", func() bool { return srv.pool.depth() == 0 })
	srv.pool.release(sl, time.Second)
	waitFor(t, "the slot is idle", func() bool { return !srv.pool.busy() })
}
