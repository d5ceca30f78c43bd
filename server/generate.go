package server

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sdtp/sdtp/llama"
)

// job is one validated generation request.
type job struct {
	chat      []llama.ChatMessage // chat completions: formatted by the model's template
	prompt    string              // completions: the raw prompt
	key       string              // routing key: requests that extend it reuse the slot's cache
	sdtp      llama.SDTPOptions
	opts      []llama.PredictOption
	maxTokens int                     // 0 = until end of generation or a full context
	stream    func(piece string) bool // nil unless streaming; false stops the generation
}

// outcome is a finished generation.
type outcome struct {
	res    llama.Result
	finish string // "stop" or "length"
	slot   int
	sdtp   llama.SDTPOptions
}

// httpError is a request's failure as the status and body to send.
type httpError struct {
	code       int
	typ, msg   string
	retryAfter int // seconds, for 503 from a full queue
}

func badRequest(format string, args ...any) *httpError {
	return &httpError{code: http.StatusBadRequest, typ: "invalid_request_error", msg: fmt.Sprintf(format, args...)}
}

func (e *httpError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeError(w, e.code, e.typ, e.msg)
}

// errClientGone: the request's context ended (the client disconnected).
// Its status, nginx's 499, reaches only the metrics.
var errClientGone = &httpError{code: 499, typ: "cancelled", msg: "client closed the request"}

// run waits for a slot and generates. A cancelled ctx stops it in the
// queue, the prefill or the decode.
func (s *Server) run(ctx context.Context, j *job) (outcome, *httpError) {
	sl, err := s.pool.acquire(ctx, j.key, j.sdtp)
	if errors.Is(err, errQueueFull) {
		return outcome{}, &httpError{code: http.StatusServiceUnavailable, typ: "unavailable_error", msg: err.Error(),
			retryAfter: s.pool.retryAfter()}
	}
	if err != nil {
		s.metrics.cancelled.WithLabelValues("queue").Inc()
		return outcome{}, errClientGone
	}
	start := time.Now()
	defer func() {
		// The slots' cgo calls run on whichever OS threads Go picks, and
		// glibc keeps what each thread frees in that thread's arena: without
		// handing it back, RSS climbs with every request that touches a new
		// thread (docs/SERVER.md, load test).
		llama.ReleaseFreedMemory()
		s.pool.release(sl, time.Since(start))
	}()

	if !sameSDTP(sl.sdtp, j.sdtp) {
		if err := sl.l.SetSDTP(j.sdtp); err != nil {
			return outcome{}, badRequest("sdtp: %v", err)
		}
		sl.sdtp, sl.history = j.sdtp, ""
	}
	prompt := j.prompt
	if j.chat != nil {
		if prompt, err = sl.l.ApplyChatTemplate(j.chat, true); err != nil {
			if errors.Is(err, llama.ErrNoChatTemplate) {
				return outcome{}, badRequest("the model has no chat template: use /v1/completions")
			}
			return outcome{}, badRequest("chat template: %v", err)
		}
	}
	opts := j.opts
	if j.stream != nil {
		opts = append(slices.Clip(opts), llama.SetTokenCallback(j.stream))
	}
	res, err := sl.l.GenerateContext(ctx, prompt, opts...)
	out := outcome{res: res, finish: "stop", slot: sl.id, sdtp: j.sdtp}
	s.metrics.observe(j.sdtp.Mode, res, pruned(res))
	if res.PromptTokens > 0 { // the cache now holds (part of) this prompt
		sl.history = j.key
	}
	switch {
	case err == nil:
		sl.history = j.key + answerKey(j, res.Text)
		if j.maxTokens > 0 && res.GeneratedTokens >= j.maxTokens {
			out.finish = "length"
		}
	case errors.Is(err, llama.ErrCancelled):
		phase := "decode"
		if res.GeneratedTokens == 0 {
			phase = "prefill"
		}
		s.metrics.cancelled.WithLabelValues(phase).Inc()
		return out, errClientGone
	case errors.Is(err, llama.ErrContextFull) && res.PromptTokens == 0:
		return out, badRequest("prompt too long: %v", err)
	case errors.Is(err, llama.ErrContextFull):
		out.finish = "length" // the answer filled the context window
	default:
		if s.cfg.Log != nil {
			s.cfg.Log("slot %d: %v", sl.id, err)
		}
		return out, &httpError{code: http.StatusInternalServerError, typ: "server_error", msg: err.Error()}
	}
	return out, nil
}

// answerKey extends a routing key by the answer, as the next turn of the
// conversation (or the next completion of the text) will start.
func answerKey(j *job, answer string) string {
	if j.chat != nil {
		return conversationKey([]llama.ChatMessage{{Role: "assistant", Content: answer}})
	}
	return answer
}

// conversationKey is the routing key of chat messages: role and content,
// separated by control characters that the roles cannot contain.
func conversationKey(msgs []llama.ChatMessage) string {
	var sb strings.Builder
	for _, m := range msgs {
		sb.WriteString(m.Role)
		sb.WriteByte(0x1f)
		sb.WriteString(m.Content)
		sb.WriteByte(0x1e)
	}
	return sb.String()
}

// pruned counts the prompt tokens a pruning stage dropped.
func pruned(res llama.Result) int {
	if res.SDTP == nil {
		return 0
	}
	n := 0
	for _, st := range res.SDTP.DroppedAt {
		if st > 0 {
			n++
		}
	}
	return n
}

// prepare validates the fields chat and completions share and turns them
// into the job's options. defaultMax is the max_tokens when none is given.
func (s *Server) prepare(p *params, maxTokens *int, defaultMax int) (*job, *httpError) {
	j := &job{maxTokens: defaultMax}
	if p.N != nil && *p.N != 1 {
		return nil, badRequest("n: only n=1 is supported")
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return nil, badRequest("max_tokens: %d, want at least 1", *maxTokens)
		}
		j.maxTokens = *maxTokens
	}
	// llama-server's defaults where the request is silent.
	temp, topP, topK := float32(0.8), float32(0.95), 40
	seed := -1
	if p.Temperature != nil {
		if temp = *p.Temperature; temp < 0 || temp > 2 {
			return nil, badRequest("temperature: %v, want 0..2", temp)
		}
	}
	if p.TopP != nil {
		if topP = *p.TopP; topP <= 0 || topP > 1 {
			return nil, badRequest("top_p: %v, want (0, 1]", topP)
		}
	}
	if p.TopK != nil {
		if topK = *p.TopK; topK < 0 {
			return nil, badRequest("top_k: %d is negative", topK)
		}
	}
	if p.Seed != nil {
		if *p.Seed < 0 || *p.Seed > 0xFFFFFFFE {
			return nil, badRequest("seed: %d, want 0..4294967294", *p.Seed)
		}
		seed = int(*p.Seed)
	}
	var freq, pres float32
	for name, v := range map[string]*float32{"frequency_penalty": p.FrequencyPenalty, "presence_penalty": p.PresencePenalty} {
		if v != nil && (*v < -2 || *v > 2) {
			return nil, badRequest("%s: %v, want -2..2", name, *v)
		}
	}
	if p.FrequencyPenalty != nil {
		freq = *p.FrequencyPenalty
	}
	if p.PresencePenalty != nil {
		pres = *p.PresencePenalty
	}
	j.opts = []llama.PredictOption{
		llama.SetTokens(j.maxTokens), llama.SetThreads(s.cfg.Threads), llama.SetTemperature(temp),
		llama.SetTopP(topP), llama.SetTopK(topK), llama.SetSeed(seed), llama.SetPenalty(1),
		llama.SetFrequencyPenalty(freq), llama.SetPresencePenalty(pres), llama.SetStopWords(p.Stop...),
	}
	var err *httpError
	j.sdtp, err = s.pruning(p.SDTP)
	return j, err
}

// pruning applies a request's "sdtp" object to the server's settings.
func (s *Server) pruning(o *sdtpParams) (llama.SDTPOptions, *httpError) {
	if o == nil {
		return s.settings(s.cfg.SDTP.Mode, 0), nil
	}
	mode := cmp.Or(o.Mode, s.cfg.SDTP.Mode)
	if !slices.Contains(s.cfg.Modes, mode) {
		return llama.SDTPOptions{}, badRequest("sdtp.mode: %q is not allowed on this server (allowed: %s)", mode, strings.Join(s.cfg.Modes, ", "))
	}
	var keep float64
	if o.KeepRatio != nil {
		switch keep = *o.KeepRatio; {
		case !(keep > 0 && keep <= 1):
			return llama.SDTPOptions{}, badRequest("sdtp.keep_ratio: %v, want (0, 1]", keep)
		case !llama.Prunes(mode):
			return llama.SDTPOptions{}, badRequest("sdtp.keep_ratio: mode %s does not prune", mode)
		}
	}
	return s.settings(mode, keep), nil
}

// settings are the server's pruning settings carried over to mode, less
// what that mode cannot use (SDTPOptions.For). keep > 0 replaces the keep
// ratio.
func (s *Server) settings(mode string, keep float64) llama.SDTPOptions {
	o := s.cfg.SDTP.For(mode)
	if keep > 0 {
		o.KeepRatio = keep
	}
	return o
}

func (s *Server) usage(o outcome) *usage {
	r := o.res
	u := &usage{PromptTokens: r.PromptTokens, CompletionTokens: r.GeneratedTokens, TotalTokens: r.PromptTokens + r.GeneratedTokens,
		PromptTokensDetails: promptDetails{CachedTokens: r.ReusedTokens},
		SDTP:                sdtpUsage{Mode: o.sdtp.Mode, FLOPRatio: 1, PrefillMS: ms(r.Prefill), DecodeMS: ms(r.Decode), Slot: o.slot}}
	if st := r.SDTP; st != nil {
		u.SDTP.Mode, u.SDTP.KeptPerStage, u.SDTP.FLOPRatio, u.SDTP.PrunedTokens = st.Mode, st.KeptPerStage, st.FLOPRatio, pruned(r)
		u.SDTP.KVPolicy, u.SDTP.Scorer = st.KVPolicy, st.Scorer
		if st.Mode != llama.ModeDense && len(st.Schedule.KeepRatios) > 0 {
			u.SDTP.KeepRatio = st.Schedule.KeepRatios[0]
		}
	}
	return u
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
