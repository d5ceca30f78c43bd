package llama

import (
	"testing"
	"unicode/utf8"
)

// FuzzPrompt: any prompt text tokenizes without crashing, and invalid
// UTF-8 is an error. (Round trips are TestTokenizeRoundTrip's job.) Every
// go test runs the seeds below; `make fuzz` fuzzes it (an instrumented
// compile of llama.cpp, which `make test` does not spend).
func FuzzPrompt(f *testing.F) {
	l, err := New(tiny.llama, SetContext(256))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(l.Free)
	for _, s := range []string{"", "hello world", "ünïcödé 日本 🙂", "\x00\xff", "<s></s>", "\U00013000\U0002000B\U0001F756"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		n, toks, err := l.TokenizeString(text)
		if !utf8.ValidString(text) {
			if err == nil {
				t.Fatalf("invalid UTF-8 %q tokenized", text)
			}
			return
		}
		if err != nil {
			t.Fatalf("tokenize %q: %v", text, err)
		}
		if int(n) != len(toks) || len(toks) == 0 || toks[0] != l.model.BOS() {
			t.Fatalf("%q: count %d for tokens %v", text, n, toks)
		}
	})
}
