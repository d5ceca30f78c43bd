package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/go-sdtp/sdtp/llama"
)

// stdin is what --chat reads (a variable for tests).
var stdin io.Reader = os.Stdin

const chatHelp = "type a message; /reset starts over, /stats shows the last turn's prefill, /quit (or end of input) ends"

// chat runs --chat: a REPL on a terminal (a "> " prompt on stderr), else
// one user message per line of stdin. Each turn applies the chat template
// to the whole history; the cache keeps the earlier turns, so a turn
// prefills only its own tokens. With --doc the document goes with the
// first message (after /reset too, so its cache is reused); with --json
// every turn prints one JSON object (a line).
func chat(c config, l *llama.LLama, gen []llama.PredictOption, stdout, stderr io.Writer) error {
	conv := l.NewConversation(opening(c)...)
	var doc string
	if c.doc != "" {
		b, err := os.ReadFile(c.doc)
		if err != nil {
			return fmt.Errorf("--doc: %w", err)
		}
		doc = string(b)
	}
	interactive := false
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		interactive = true
		fmt.Fprintln(stderr, chatHelp)
	}
	var last *llama.Result
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for {
		if interactive {
			fmt.Fprint(stderr, "> ")
		}
		if !in.Scan() {
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch line {
		case "":
			continue
		case "/quit", "/exit":
			return nil
		case "/reset":
			conv.Reset()
			last = nil
			fmt.Fprintln(stderr, "(conversation reset)")
			continue
		case "/stats":
			if last == nil {
				fmt.Fprintln(stderr, "(no turn yet)")
			} else {
				fmt.Fprintln(stderr, prefillLine(*last))
			}
			continue
		}
		if strings.HasPrefix(line, "/") {
			fmt.Fprintf(stderr, "unknown command %s (%s)\n", line, chatHelp)
			continue
		}
		msg := line
		if doc != "" && len(conv.Messages()) == len(opening(c)) {
			msg = llama.DocumentQuestion(doc, line) // the document goes with the first message
		}
		res, err := conv.Say(context.Background(), msg, gen...)
		if err != nil {
			return templateErr(c, "--chat", err)
		}
		last = &res
		if c.json {
			if err := json.NewEncoder(stdout).Encode(newReport(res)); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(stdout)
	}
}
