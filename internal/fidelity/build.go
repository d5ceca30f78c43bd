package fidelity

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/go-sdtp/sdtp/sdtp"
)

// Tokenizer turns text into the model's tokens (*bridge.Model).
type Tokenizer interface {
	// Tokenize: addSpecial adds BOS/EOS where the model asks for them,
	// parseSpecial turns special-token text into those tokens.
	Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error)
}

// Format is how a task's text becomes the model's prompt.
type Format struct {
	// Chat, when set, formats a conversation with the model's chat template
	// and opens the assistant's turn (bridge.Model.ApplyChatTemplate with
	// add_assistant): system may be empty. Unset: a completion-style
	// prompt, BOS + text + question + the answer prefix, for base models.
	Chat   func(system, user string) (string, error)
	System string // the system message of chat prompts; empty: none
}

// Name is "chat" or "completion".
func (f Format) Name() string {
	if f.Chat != nil {
		return "chat"
	}
	return "completion"
}

// FormatNames are the names ChooseFormat takes.
var FormatNames = []string{"auto", "chat", "completion"}

// ChooseFormat picks a format by name: "completion"; "chat", the model's
// chat template through chat (bridge.Model.UserTurn), which must work; or
// "auto", chat when the model has a template, i.e. unless chat fails with
// noTemplate (bridge.ErrNoChatTemplate). system is the chat prompts'
// system message; it needs chat prompts.
func ChooseFormat(name, system string, chat func(system, user string) (string, error), noTemplate error) (Format, error) {
	if !slices.Contains(FormatNames, name) {
		return Format{}, fmt.Errorf("prompt format %q: want one of %s", name, strings.Join(FormatNames, ", "))
	}
	if name == "completion" {
		if system != "" {
			return Format{}, errors.New("a system message needs chat prompts")
		}
		return Format{}, nil
	}
	_, err := chat("", "probe")
	switch {
	case err == nil:
		return Format{Chat: chat, System: system}, nil
	case name == "auto" && errors.Is(err, noTemplate):
		if system != "" {
			return Format{}, errors.New("a system message needs chat prompts, and the model has no chat template")
		}
		return Format{}, nil
	}
	return Format{}, fmt.Errorf("prompt format %s: %w", name, err)
}

// bodyMark stands for the documents while the chat template formats the
// user message; the template's text around it becomes head and tail.
const bodyMark = "\x1eSDTP-DOCUMENTS\x1e"

// frame is a prompt without its body: the tokens before and after it.
type frame struct{ head, tail []int32 }

// frameFor tokenizes the text before the body (intro) and after it
// (question, then for completion prompts a newline and the answer prefix)
// in format f.
func frameFor(tok Tokenizer, f Format, intro, question, answerPrefix string) (frame, error) {
	var fr frame
	var err error
	if f.Chat == nil {
		if fr.head, err = tok.Tokenize(intro, true, false); err != nil {
			return fr, err
		}
		fr.tail, err = tok.Tokenize("\n\n"+question+"\n"+answerPrefix, false, false)
		return fr, err
	}
	text, err := f.Chat(f.System, intro+bodyMark+"\n\n"+question)
	if err != nil {
		return fr, err
	}
	before, after, ok := strings.Cut(text, bodyMark)
	if !ok {
		return fr, errors.New("fidelity: the chat template dropped the user message")
	}
	// The template writes BOS itself when the model wants one.
	if fr.head, err = tok.Tokenize(before, false, true); err != nil {
		return fr, err
	}
	fr.tail, err = tok.Tokenize(after, false, true)
	return fr, err
}

// filler is the body text around the needles: exactly the tokens the
// budget leaves, and the offsets where a needle may go (chunk starts:
// sentences or documents), ascending, with 0 and len(toks).
type filler struct {
	toks   []int32
	bounds []int
}

// chunks builds a filler of exactly n tokens from tokenized chunks taken
// in order, cutting the last one short. next returns the following chunk.
func chunks(n int, next func() ([]int32, error)) (filler, error) {
	var f filler
	for len(f.toks) < n {
		c, err := next()
		if err != nil {
			return f, err
		}
		if len(c) == 0 {
			continue
		}
		f.bounds = append(f.bounds, len(f.toks))
		f.toks = append(f.toks, c[:min(len(c), n-len(f.toks))]...)
	}
	f.bounds = append(f.bounds, n)
	return f, nil
}

// needle is a fact to place: its tokens and where it goes, as a fraction
// of the room needles have (0: as early as allowed, 1: as late).
type needle struct {
	toks []int32
	frac float64
}

// Span is where a needle sits in the prompt, in tokens.
type Span struct {
	Start int `json:"start"`
	Len   int `json:"len"`
}

// assemble lays out head + filler with the needles + tail, exactly n
// tokens. Needles go to filler bounds nearest their fractions, in order
// of fraction (ties keep their input order), inside the part of the prompt
// pruning may drop: at or after sdtp.HeadKeep and the head, ending before
// the protected tail (sdtp.TailLen). With allowProtected they may go
// anywhere in the body instead. The spans returned are in input order.
func assemble(n int, fr frame, needles []needle, allowProtected bool, fill func(int) (filler, error)) ([]int32, []Span, error) {
	total := 0
	for _, nd := range needles {
		total += len(nd.toks)
	}
	free := n - len(fr.head) - len(fr.tail) - total
	if free < 1 {
		return nil, nil, fmt.Errorf("fidelity: %d tokens cannot hold the question and needles (%d tokens)", n, n-free)
	}
	lo, hi := max(len(fr.head), sdtp.HeadKeep), n-sdtp.TailLen(n)-total // room for all needles' starts
	if allowProtected {
		lo, hi = len(fr.head), n-len(fr.tail)-total
	}
	if len(needles) > 0 && hi < lo {
		return nil, nil, fmt.Errorf("fidelity: %d tokens leave no room for needles outside the protected head and tail", n)
	}
	f, err := fill(free)
	if err != nil {
		return nil, nil, err
	}
	order := make([]int, len(needles))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(needles[a].frac, needles[b].frac) })
	spans := make([]Span, len(needles))
	offsets := make([]int, len(needles)) // filler offset of each needle, in order
	before, prev := 0, 0                 // needle tokens placed so far; the last offset
	for k, i := range order {
		nd := needles[i]
		if nd.frac < 0 || nd.frac > 1 || math.IsNaN(nd.frac) {
			return nil, nil, fmt.Errorf("fidelity: needle position %v is outside [0, 1]", nd.frac)
		}
		base := len(fr.head) + before // prompt position of filler offset 0 for this needle
		target := lo + int(math.Round(nd.frac*float64(hi-lo))) + before - base
		oLo, oHi := max(prev, lo+before-base), hi+before-base
		o, ok := nearest(f.bounds, target, oLo, oHi)
		if !ok {
			return nil, nil, fmt.Errorf("fidelity: no sentence or document start between tokens %d and %d for a needle", oLo+base, oHi+base)
		}
		spans[i] = Span{Start: base + o, Len: len(nd.toks)}
		offsets[k], prev = o, o
		before += len(nd.toks)
	}
	out := append(make([]int32, 0, n), fr.head...)
	at := 0
	for k, i := range order {
		out = append(out, f.toks[at:offsets[k]]...)
		out = append(out, needles[i].toks...)
		at = offsets[k]
	}
	out = append(out, f.toks[at:]...)
	out = append(out, fr.tail...)
	if len(out) != n {
		return nil, nil, fmt.Errorf("fidelity: built %d tokens, want %d", len(out), n) // a bug, not bad input
	}
	return out, spans, nil
}

// nearest returns the bound in [lo, hi] closest to target (the earlier on
// a tie); bounds are ascending.
func nearest(bounds []int, target, lo, hi int) (int, bool) {
	best, found := 0, false
	for _, b := range bounds {
		if b < lo || b > hi {
			continue
		}
		if !found || abs(b-target) < abs(best-target) {
			best, found = b, true
		}
	}
	return best, found
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// DepthBands are the edges of the depth bands accuracy is reported by:
// where the asked needle starts, as a fraction of the prompt. The last
// band ends at the protected tail (sdtp.TailKeepFrac), so it is narrower.
var DepthBands = []float64{0, 0.25, 0.5, 0.75, 1}

// Band returns the index of the depth band holding depth, or -1 for a
// prompt without one (depth < 0).
func Band(depth float64) int {
	if depth < 0 {
		return -1
	}
	for i := 1; i < len(DepthBands); i++ {
		if depth < DepthBands[i] {
			return i - 1
		}
	}
	return len(DepthBands) - 2
}
