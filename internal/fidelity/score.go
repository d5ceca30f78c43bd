package fidelity

import (
	"strings"
	"unicode"
)

// Normalize is the answer normalisation of the SQuAD evaluation script
// (Rajpurkar et al. 2016), used by RULER's and HotpotQA's scorers too:
// lower case, punctuation removed, the articles a/an/the removed,
// whitespace collapsed to single spaces.
func Normalize(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			return -1
		}
		return r
	}, s)
	words := strings.Fields(s)
	out := words[:0]
	for _, w := range words {
		if w != "a" && w != "an" && w != "the" {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}

// ExactMatch is 1 when the normalised prediction equals one of the
// normalised gold answers, else 0.
func ExactMatch(pred string, golds []string) float64 {
	p := Normalize(pred)
	for _, g := range golds {
		if Normalize(g) == p {
			return 1
		}
	}
	return 0
}

// F1 is the best token-level F1 of the prediction against the gold answers
// after Normalize: precision and recall over the multiset of shared words.
// When the prediction or a gold answer normalises to nothing, that pair
// scores 1 if both do, else 0 (the SQuAD v2 script's rule).
func F1(pred string, golds []string) float64 {
	best := 0.0
	pt := strings.Fields(Normalize(pred))
	for _, g := range golds {
		best = max(best, tokenF1(pt, strings.Fields(Normalize(g))))
	}
	return best
}

func tokenF1(pred, gold []string) float64 {
	if len(pred) == 0 || len(gold) == 0 {
		if len(pred) == len(gold) {
			return 1
		}
		return 0
	}
	count := map[string]int{}
	for _, w := range gold {
		count[w]++
	}
	same := 0
	for _, w := range pred {
		if count[w] > 0 {
			count[w]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	p := float64(same) / float64(len(pred))
	r := float64(same) / float64(len(gold))
	return 2 * p * r / (p + r)
}

// Contains reports whether the normalised output holds the normalised
// answer as a run of whole words ("1234" is not found in "12345"). An
// answer that normalises to nothing is never found.
func Contains(output, answer string) bool {
	a := Normalize(answer)
	if a == "" {
		return false
	}
	return strings.Contains(" "+Normalize(output)+" ", " "+a+" ")
}

// ContainsAny reports whether the output contains one of the answers
// (RULER's QA metric: any gold answer found).
func ContainsAny(output string, answers []string) bool {
	for _, a := range answers {
		if Contains(output, a) {
			return true
		}
	}
	return false
}

// ContainsAll reports whether the output contains every answer (the
// needle tasks: all asked values, all variables of a chain, all common
// words). No answers is an error of the caller and reports false.
func ContainsAll(output string, answers []string) bool {
	for _, a := range answers {
		if !Contains(output, a) {
			return false
		}
	}
	return len(answers) > 0
}
