package llama

import (
	"bytes"
	"unicode/utf8"
)

// output accumulates generated text, cuts it at the first stop word, and
// streams it to a callback. Text that might be the start of a stop word, or
// an incomplete UTF-8 character, is held back until it is resolved, so the
// callback never sees a stop word or a broken character.
type output struct {
	stops   [][]byte
	maxStop int
	emit    func(string) bool
	text    []byte
	sent    int // bytes of text already passed to emit
}

func (l *LLama) newOutput(po PredictOptions) *output {
	o := &output{emit: l.tokenCallback}
	if po.TokenCallback != nil {
		o.emit = po.TokenCallback
	}
	for _, s := range po.StopPrompts {
		if s != "" {
			o.stops = append(o.stops, []byte(s))
			o.maxStop = max(o.maxStop, len(s))
		}
	}
	return o
}

// add appends a token's bytes and reports whether generation must stop: a
// stop word appeared or the callback returned false.
func (o *output) add(piece []byte) bool {
	from := max(0, len(o.text)-o.maxStop+1)
	o.text = append(o.text, piece...)
	if cut := o.firstStop(from); cut >= 0 {
		o.text = o.text[:cut]
		o.flush(len(o.text))
		return true
	}
	return !o.flush(o.safeEnd())
}

// firstStop returns where the earliest stop word starting at or after from
// begins, or -1.
func (o *output) firstStop(from int) int {
	cut := -1
	for _, s := range o.stops {
		if i := bytes.Index(o.text[from:], s); i >= 0 && (cut < 0 || from+i < cut) {
			cut = from + i
		}
	}
	return cut
}

// safeEnd is how far text can be emitted: before any suffix that may grow
// into a stop word, and before an incomplete UTF-8 character.
func (o *output) safeEnd() int {
	stopEnd := len(o.text)
	for _, s := range o.stops {
		for k := min(len(s)-1, len(o.text)); k > 0; k-- {
			if bytes.HasSuffix(o.text, s[:k]) {
				stopEnd = min(stopEnd, len(o.text)-k)
				break
			}
		}
	}
	end := stopEnd
	for back := 0; back < utf8.UTFMax-1 && end > o.sent && !utf8.Valid(o.text[o.sent:end]); back++ {
		end--
	}
	if !utf8.Valid(o.text[o.sent:end]) {
		end = stopEnd // invalid bytes from the model, not a split character
	}
	return end
}

// flush emits text up to end; it reports whether the callback wants more.
func (o *output) flush(end int) bool {
	if end <= o.sent {
		return true
	}
	chunk := string(o.text[o.sent:end])
	o.sent = end
	return o.emit(chunk)
}

// finish emits whatever is held back and returns the whole text.
func (o *output) finish() string {
	o.flush(len(o.text))
	return string(o.text)
}
