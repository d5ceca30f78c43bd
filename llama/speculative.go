package llama

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-sdtp/sdtp/bridge"
)

// defaultNDraft is the draft length when SetNDraft is not given; an
// explicit SetNDraft(0) drafts nothing (go-llama.cpp's meaning), so the
// target model decodes alone.
const defaultNDraft = 8

// SpeculativeSampling generates a continuation of text with l as the target
// model and ll as the draft model: ll proposes NDraft tokens greedily, l
// checks them in one batch and keeps the prefix it would have sampled
// itself. The output follows l's sampler exactly, so with greedy sampling
// it equals l.Predict's; the draft only changes the speed. Both models must
// share a vocabulary.
func (l *LLama) SpeculativeSampling(ll *LLama, text string, opts ...PredictOption) (string, error) {
	if ll == nil || ll == l {
		return "", errors.New("llama: speculative sampling needs a separate draft model")
	}
	unlock, err := lockPair(l, ll)
	if err != nil {
		return "", err
	}
	defer unlock()
	if l.staged != nil || ll.staged != nil {
		return "", fmt.Errorf("llama: SpeculativeSampling: %w (load both models in mode %s)", ErrStagedUnsupported, ModeLlamaCpp)
	}
	po := NewPredictOptions(opts...)
	if !po.nDraftSet {
		po.NDraft = defaultNDraft
	}
	if l.model.NVocab() != ll.model.NVocab() {
		return "", fmt.Errorf("llama: draft vocabulary has %d tokens, target %d", ll.model.NVocab(), l.model.NVocab())
	}
	var res Result
	toks, err := l.promptTokens(text, &po)
	if err != nil {
		return "", err
	}
	if err := l.timedPrefill(context.Background(), toks, po, &res); err != nil {
		return "", err
	}
	var draftRes Result
	if err := ll.timedPrefill(context.Background(), toks, po, &draftRes); err != nil {
		return "", fmt.Errorf("llama: draft model: %w", err)
	}
	smp, err := l.newSampler(po, toks)
	if err != nil {
		return "", err
	}
	defer smp.Free()
	greedy, err := bridge.NewSampler(ll.model, bridge.SamplerParams{})
	if err != nil {
		return "", err
	}
	defer greedy.Free()

	out := l.newOutput(po)
	start := time.Now()
	err = speculate(l, ll, smp, greedy, po, out, &res)
	res.Decode = time.Since(start)
	l.debugf(po, res)
	return out.finish(), err
}

// speculate runs draft-then-verify rounds. seq is the accepted text; each
// cache holds a prefix of it (l.cached, ll.cached), and the last accepted
// token is decoded as part of the next round's batch.
func speculate(l, ll *LLama, smp, greedy *bridge.Sampler, po PredictOptions, out *output, res *Result) error {
	tok, err := smp.Sample(l.ctx, -1)
	if err != nil {
		return err
	}
	seq := append([]int32(nil), l.cached...)
	// emit accepts tok into the output; it reports whether to stop.
	emit := func(tok int32) bool {
		if l.model.IsEOG(tok) {
			return true
		}
		res.GeneratedTokens++
		seq = append(seq, tok)
		return out.add(l.model.TokenPiece(tok)) || res.GeneratedTokens == po.Tokens
	}
	for {
		if emit(tok) {
			return nil
		}
		room := l.ctx.NCtx() - len(seq)
		if room <= 0 {
			if po.Tokens == 0 {
				return nil
			}
			return fmt.Errorf("%w: speculative sampling does not shift the context", ErrContextFull)
		}
		drafts, err := ll.draft(seq, min(po.NDraft, room-1), greedy)
		if err != nil {
			return fmt.Errorf("llama: draft model: %w", err)
		}
		// Verify: decode what the target lacks plus the drafts, then sample
		// each position; stop at the first disagreement.
		fresh := append(append([]int32(nil), seq[len(l.cached):]...), drafts...)
		if err := l.ctx.Decode(fresh, len(l.cached), bridge.OutputAll); err != nil {
			l.resetCache()
			return err
		}
		base := len(seq) - len(l.cached) - 1 // output row predicting the token after seq
		l.cached = append(l.cached, fresh...)
		for i := 0; ; i++ {
			if tok, err = smp.Sample(l.ctx, base+i); err != nil {
				return err
			}
			if i == len(drafts) || tok != drafts[i] {
				break
			}
			if emit(tok) {
				return nil
			}
		}
		// Drop rejected drafts from both caches.
		for _, m := range []*LLama{l, ll} {
			if keep := commonPrefix(m.cached, seq); keep < len(m.cached) {
				if !m.ctx.Truncate(keep) {
					m.resetCache()
					continue
				}
				m.cached = m.cached[:keep]
			}
		}
	}
}

// draft greedily proposes up to n tokens after seq, decoding them into the
// draft cache.
func (ll *LLama) draft(seq []int32, n int, greedy *bridge.Sampler) ([]int32, error) {
	pending := seq[len(ll.cached):]
	var drafts []int32
	for len(drafts) < n {
		if err := ll.ctx.Decode(pending, len(ll.cached), bridge.OutputLast); err != nil {
			ll.resetCache()
			return nil, err
		}
		ll.cached = append(ll.cached, pending...)
		tok, err := greedy.Sample(ll.ctx, -1)
		if err != nil {
			return nil, err
		}
		drafts = append(drafts, tok)
		if ll.model.IsEOG(tok) {
			break
		}
		pending = []int32{tok}
	}
	return drafts, nil
}

// lockPair locks two models in a fixed order so that concurrent calls with
// swapped roles cannot deadlock.
func lockPair(a, b *LLama) (func(), error) {
	first, second := a, b
	if a.id > b.id {
		first, second = b, a
	}
	if err := first.lock(); err != nil {
		return nil, err
	}
	if err := second.lock(); err != nil {
		first.unlock()
		return nil, err
	}
	return func() { second.unlock(); first.unlock() }, nil
}
