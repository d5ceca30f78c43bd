package fidelity

import "strings"

// Verdict is how an answer scored.
type Verdict struct {
	// Correct: for needle tasks every answer string is in the output; for
	// QA one gold answer is ("answer contained in output", RULER's QA
	// metric). Accuracy counts these.
	Correct bool `json:"correct"`
	// EM and F1 (QA only) score the output's first non-empty line, the
	// answer proper, against the best gold answer.
	EM float64 `json:"em,omitempty"`
	F1 float64 `json:"f1,omitempty"`
}

// Score judges a greedy answer to p.
func Score(p Prompt, output string) Verdict {
	if !p.QA {
		return Verdict{Correct: ContainsAll(output, p.Answers)}
	}
	line := ""
	for _, l := range strings.Split(output, "\n") {
		if strings.TrimSpace(l) != "" {
			line = l
			break
		}
	}
	return Verdict{Correct: ContainsAny(output, p.Answers), EM: ExactMatch(line, p.Answers), F1: F1(line, p.Answers)}
}
