package fidelity

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalize(t *testing.T) {
	assert.Equal(t, "eiffel tower", Normalize("  The Eiffel   Tower! "))
	assert.Equal(t, "applepie", Normalize("An apple-pie")) // punctuation goes, as in the SQuAD script
	assert.Equal(t, "theory of everything", Normalize("a Theory of Everything."))
	assert.Equal(t, "", Normalize("The, a; an."))
}

func TestExactMatchAndF1(t *testing.T) {
	golds := []string{"Denver Broncos", "The Broncos"}
	assert.Equal(t, 1.0, ExactMatch("the Denver Broncos.", golds))
	assert.Equal(t, 1.0, ExactMatch("broncos", golds), "matches the second gold after normalisation")
	assert.Equal(t, 0.0, ExactMatch("Carolina Panthers", golds))
	// "denver broncos won" vs "denver broncos": precision 2/3, recall 1.
	assert.InDelta(t, 0.8, F1("Denver Broncos won", golds), 1e-9)
	// Best gold wins: "broncos" vs "broncos" is 1.
	assert.Equal(t, 1.0, F1("Broncos", golds))
	assert.Equal(t, 0.0, F1("Panthers", golds))
	// Repeated words count once per occurrence in the gold.
	assert.InDelta(t, 2*0.5*1/(0.5+1), F1("new new", []string{"new"}), 1e-9)
	assert.Equal(t, 0.0, F1("", golds))
	assert.Equal(t, 1.0, F1("the", []string{"a"}), "both normalise to nothing")
}

func TestContains(t *testing.T) {
	assert.True(t, Contains("The hidden number is 1234567.", "1234567"))
	assert.False(t, Contains("The hidden number is 12345678.", "1234567"), "whole words only")
	assert.True(t, Contains("code: 0a1b2c3d-0000-1111-2222-333344445555", "0A1B2C3D-0000-1111-2222-333344445555"))
	assert.False(t, Contains("anything", "the"), "an empty answer is never found")
	assert.True(t, ContainsAll("apple, river and lion", []string{"lion", "apple"}))
	assert.False(t, ContainsAll("apple, river", []string{"lion", "apple"}))
	assert.False(t, ContainsAll("apple", nil))
	assert.True(t, ContainsAny("It was Paris.", []string{"London", "Paris"}))
}

func TestScore(t *testing.T) {
	needle := Prompt{Answers: []string{"1234567", "7654321"}}
	assert.True(t, Score(needle, "1234567 and 7654321").Correct)
	assert.False(t, Score(needle, "1234567").Correct)

	qa := Prompt{QA: true, Answers: []string{"Denver Broncos"}}
	v := Score(qa, "\n Denver Broncos\nQuestion: who lost?")
	assert.True(t, v.Correct)
	assert.Equal(t, 1.0, v.EM, "EM reads the first non-empty line")
	assert.Equal(t, 1.0, v.F1)
	v = Score(qa, "I think it was the Carolina Panthers, not the Denver Broncos")
	assert.True(t, v.Correct)
	assert.Equal(t, 0.0, v.EM)
	assert.Less(t, v.F1, 0.5)
}
