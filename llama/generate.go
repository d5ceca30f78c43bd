package llama

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
)

// Result is one generation with its token counts and timings.
type Result struct {
	Text            string
	PromptTokens    int
	ReusedTokens    int // prompt tokens already in the KV cache (prefix reuse)
	GeneratedTokens int
	Prefill         time.Duration
	Decode          time.Duration
	SDTP            *SDTPStats // set in the staged modes
}

// Predict generates a continuation of text and returns it (without the
// prompt). Special-token text in the prompt becomes those tokens (see
// TokenizeString), so the output of ApplyChatTemplate is a prompt as is.
func (l *LLama) Predict(text string, opts ...PredictOption) (string, error) {
	return l.PredictContext(context.Background(), text, opts...)
}

// PredictContext is Predict that stops when ctx is done; see
// GenerateContext.
func (l *LLama) PredictContext(ctx context.Context, text string, opts ...PredictOption) (string, error) {
	res, err := l.GenerateContext(ctx, text, opts...)
	return res.Text, err
}

// Generate is Predict with token counts and timings.
func (l *LLama) Generate(text string, opts ...PredictOption) (Result, error) {
	return l.GenerateContext(context.Background(), text, opts...)
}

// GenerateContext is Generate that stops when ctx is done: in the prompt's
// prefill (within one graph operation of a running batch or pruning stage)
// or between generated tokens. It then returns what was generated so far
// and an error matching both ErrCancelled and ctx.Err(). The *LLama stays
// usable; the llama.cpp path keeps the prompt batches decoded before the
// cancel for the next call to reuse. A call waiting for another to finish
// (calls on one *LLama run one at a time) returns at once if ctx is done by
// the time it starts.
func (l *LLama) GenerateContext(ctx context.Context, text string, opts ...PredictOption) (Result, error) {
	if err := l.lock(); err != nil {
		return Result{}, err
	}
	defer l.unlock()
	res, err := l.generate(ctx, text, NewPredictOptions(opts...))
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", ErrCancelled, ctx.Err())
	}
	return res, err
}

func (l *LLama) generate(ctx context.Context, text string, po PredictOptions) (Result, error) {
	var res Result
	if err := ctx.Err(); err != nil {
		return res, err
	}
	toks, err := l.promptTokens(text, &po)
	if err != nil {
		return res, err
	}
	if l.staged != nil {
		out := l.newOutput(po)
		err := l.generateStaged(ctx, toks, po, &res, out)
		res.Text = out.finish()
		l.debugf(po, res)
		return res, err
	}
	release := l.ctx.AbortWhen(ctx)
	defer release()
	if err := l.timedPrefill(ctx, toks, po, &res); err != nil {
		return res, err
	}
	smp, err := l.newSampler(po, toks)
	if err != nil {
		return res, err
	}
	defer smp.Free()

	out := l.newOutput(po)
	start := time.Now()
	err = l.sampleLoop(ctx, smp, po, len(toks), out, &res)
	res.Decode = time.Since(start)
	res.Text = out.finish()
	if err == nil {
		err = l.savePromptCache(po, po.PromptCacheAll)
	}
	l.debugf(po, res)
	return res, err
}

// Eval feeds text into the context without generating, so a later Predict
// whose prompt starts with it reuses the work.
func (l *LLama) Eval(text string, opts ...PredictOption) error {
	if err := l.lock(); err != nil {
		return err
	}
	defer l.unlock()
	if l.staged != nil {
		return l.staged.unsupported("Eval (staged modes extend their caches through Predict and Generate)")
	}
	po := NewPredictOptions(opts...)
	toks, err := l.promptTokens(text, &po)
	if err != nil {
		return err
	}
	var res Result
	return l.timedPrefill(context.Background(), toks, po, &res)
}

// promptTokens validates the per-call options and tokenizes the prompt.
func (l *LLama) promptTokens(text string, po *PredictOptions) ([]int32, error) {
	if err := po.check(); err != nil {
		return nil, err
	}
	toks, err := l.model.TokenizePrompt(text)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("llama: empty prompt (the model adds no BOS token)")
	}
	if len(toks) >= l.ctx.NCtx() {
		return nil, fmt.Errorf("%w: prompt of %d tokens needs a context of at least %d (have %d; raise SetContext)",
			ErrContextFull, len(toks), len(toks)+1, l.ctx.NCtx())
	}
	return toks, nil
}

// timedPrefill brings the KV cache to hold exactly toks, reusing the longest
// cached prefix (from memory or the prompt cache file), and leaves the
// logits of the last prompt token ready. It checks ctx between batches;
// stopping inside one is the abort flag's job (bridge.Context.AbortWhen).
func (l *LLama) timedPrefill(ctx context.Context, toks []int32, po PredictOptions, res *Result) error {
	start := time.Now()
	defer func() { res.Prefill = time.Since(start) }()
	res.PromptTokens = len(toks)
	l.ctx.SetThreads(po.Threads)

	if po.PathPromptCache != "" && commonPrefix(l.cached, toks) < len(toks)-1 {
		if _, err := os.Stat(po.PathPromptCache); err == nil {
			cached, err := l.ctx.LoadState(po.PathPromptCache)
			if err != nil {
				l.cached = nil
				return fmt.Errorf("llama: prompt cache: %w", err)
			}
			l.cached = cached
		}
	}
	n := min(commonPrefix(l.cached, toks), len(toks)-1) // the last token is re-run for its logits
	if n < len(l.cached) && !l.ctx.Truncate(n) {
		l.ctx.Clear()
		n = 0
	}
	l.cached = l.cached[:n]
	res.ReusedTokens = n

	chunk := l.ctx.NBatch()
	if po.Batch > 0 && po.Batch < chunk {
		chunk = po.Batch
	}
	for start := n; start < len(toks); start += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+chunk, len(toks))
		outputs := bridge.OutputNone
		if end == len(toks) {
			outputs = bridge.OutputLast
		}
		if err := l.ctx.Decode(toks[start:end], start, outputs); err != nil {
			l.recoverCache(err)
			return err
		}
		l.cached = append(l.cached, toks[start:end]...)
	}
	return l.savePromptCache(po, true)
}

// savePromptCache writes the state file when the options ask for it.
func (l *LLama) savePromptCache(po PredictOptions, now bool) error {
	if po.PathPromptCache == "" || po.PromptCacheRO || !now {
		return nil
	}
	if err := l.ctx.SaveState(po.PathPromptCache, l.cached); err != nil {
		return fmt.Errorf("llama: prompt cache: %w", err)
	}
	return nil
}

func (l *LLama) resetCache() {
	l.ctx.Clear()
	l.cached = nil
}

// recoverCache brings the KV cache back in line with l.cached after a
// failed Decode. An aborted Decode leaves the ubatches it finished before
// the abort; dropping just those keeps l.cached's tokens for the next call
// to reuse. Any other failure clears the cache.
func (l *LLama) recoverCache(err error) {
	if errors.Is(err, bridge.ErrAborted) && l.ctx.Truncate(len(l.cached)) {
		return
	}
	l.resetCache()
}

// sampleLoop samples, emits and decodes tokens on llama.cpp's context.
func (l *LLama) sampleLoop(ctx context.Context, smp *bridge.Sampler, po PredictOptions, promptLen int, out *output, res *Result) error {
	sample := func() (int32, error) { return smp.Sample(l.ctx, -1) }
	return l.loop(ctx, po, res, out, sample, func(tok int32) (bool, error) {
		if len(l.cached) >= l.ctx.NCtx() {
			if po.Tokens == 0 {
				return true, nil // "until EOS": the window bounds the output
			}
			if err := l.shiftContext(po, promptLen); err != nil {
				return true, err
			}
		}
		if err := l.ctx.Decode([]int32{tok}, len(l.cached), bridge.OutputLast); err != nil {
			l.recoverCache(err)
			return true, err
		}
		l.cached = append(l.cached, tok)
		return false, nil
	})
}

// loop is the sampling loop of every generation path: draw a token; stop at
// end-of-generation, a stop word, the callback's word, the token budget or
// a done ctx; else feed the token back (feed may also stop, e.g. at a full
// context).
func (l *LLama) loop(ctx context.Context, po PredictOptions, res *Result, out *output, sample func() (int32, error), feed func(tok int32) (bool, error)) error {
	for po.Tokens == 0 || res.GeneratedTokens < po.Tokens {
		if err := ctx.Err(); err != nil {
			return err
		}
		tok, err := sample()
		if err != nil {
			return err
		}
		if l.model.IsEOG(tok) {
			return nil
		}
		res.GeneratedTokens++
		if out.add(l.model.TokenPiece(tok)) || res.GeneratedTokens == po.Tokens {
			return nil
		}
		if stop, err := feed(tok); stop || err != nil {
			return err
		}
	}
	return nil
}

// shiftContext makes room when generation fills the window, as llama.cpp's
// main example does: keep the first NKeep prompt tokens, drop half of the
// rest, and slide the remainder down.
func (l *LLama) shiftContext(po PredictOptions, promptLen int) error {
	keep := po.NKeep
	if keep < 0 || keep > promptLen {
		keep = promptLen
	}
	keep = max(keep, 1) // never drop BOS
	discard := (len(l.cached) - keep) / 2
	if discard == 0 || !l.ctx.CanShift() || !l.ctx.Discard(keep, discard, len(l.cached)) {
		return fmt.Errorf("%w: %d tokens generated and the cache cannot shift (NKeep %d)", ErrContextFull, len(l.cached)-promptLen, keep)
	}
	l.cached = append(l.cached[:keep], l.cached[keep+discard:]...)
	return nil
}

func (l *LLama) newSampler(po PredictOptions, prompt []int32) (*bridge.Sampler, error) {
	bias, err := parseLogitBias(po.LogitBias)
	if err != nil {
		return nil, err
	}
	repeat := po.Repeat
	if repeat == -1 { // llama.cpp's "the whole context"; its sampler reads -1 as 0 = off
		repeat = l.ctx.NCtx()
	}
	seed := uint32(0xFFFFFFFF) // llama.cpp's "random seed"
	if po.Seed >= 0 {
		seed = uint32(po.Seed)
	}
	smp, err := bridge.NewSampler(l.model, bridge.SamplerParams{
		Seed:            seed,
		Temperature:     po.Temperature,
		TopK:            po.TopK,
		TopP:            po.TopP,
		TypicalP:        po.TypicalP,
		RepeatLastN:     repeat,
		RepeatPenalty:   po.Penalty,
		FreqPenalty:     po.FrequencyPenalty,
		PresencePenalty: po.PresencePenalty,
		Mirostat:        po.Mirostat,
		MirostatTau:     po.MirostatTAU,
		MirostatEta:     po.MirostatETA,
		LogitBias:       bias,
		Grammar:         po.Grammar,
		IgnoreEOS:       po.IgnoreEOS,
	})
	if err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	smp.AcceptPrompt(prompt)
	return smp, nil
}

// parseLogitBias reads go-llama.cpp's "TOKEN+BIAS" / "TOKEN-BIAS" entries
// (e.g. "15043+1 2-inf"), separated by spaces or commas.
func parseLogitBias(s string) ([]bridge.LogitBias, error) {
	var out []bridge.LogitBias
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		i := strings.IndexAny(f, "+-")
		if i <= 0 {
			return nil, fmt.Errorf("llama: logit bias %q: want TOKEN+BIAS or TOKEN-BIAS", f)
		}
		tok, err := strconv.ParseInt(f[:i], 10, 32)
		if err != nil || tok < 0 {
			return nil, fmt.Errorf("llama: logit bias %q: bad token id", f)
		}
		bias, err := strconv.ParseFloat(f[i:], 32)
		if err != nil || math.IsNaN(bias) {
			return nil, fmt.Errorf("llama: logit bias %q: bad bias", f)
		}
		out = append(out, bridge.LogitBias{Token: int32(tok), Bias: float32(bias)})
	}
	return out, nil
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func (l *LLama) debugf(po PredictOptions, r Result) {
	if !po.DebugMode {
		return
	}
	fmt.Fprintf(os.Stderr, "llama: prompt %d tokens (%d reused) in %v; generated %d tokens in %v (%.1f tok/s)\n",
		r.PromptTokens, r.ReusedTokens, r.Prefill.Round(time.Microsecond), r.GeneratedTokens,
		r.Decode.Round(time.Microsecond), float64(r.GeneratedTokens)/max(r.Decode.Seconds(), 1e-9))
}
