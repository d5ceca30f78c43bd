package fidelity

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/bridge"
	"github.com/go-sdtp/sdtp/gguf/testmodel"
	"github.com/go-sdtp/sdtp/sdtp"
)

// tinyModel is a random-weight Gemma 3 whose tokenizer builds the prompts.
func tinyModel(t *testing.T) *bridge.Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	require.NoError(t, testmodel.Write(path, testmodel.Gemma3()))
	m, err := bridge.LoadModel(path, bridge.ModelParams{UseMMap: true})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	return m
}

func testHaystack(t *testing.T) *Haystack {
	var b strings.Builder
	for i := range 400 {
		fmt.Fprintf(&b, "The %s of the %s was %s. ", nouns[i%len(nouns)], nouns[(7*i+3)%len(nouns)], adjectives[i%len(adjectives)])
		if i%9 == 8 {
			b.WriteString("\n")
		}
	}
	h, err := NewHaystack(b.String())
	require.NoError(t, err)
	return h
}

// fakeChat formats like a Gemma chat template.
func fakeChat(system, user string) (string, error) {
	return "<bos><start_of_turn>user\n" + system + user + "<end_of_turn>\n<start_of_turn>model\n", nil
}

// checkPlacement: the prompt has exactly its length, and every needle
// sits where pruning may drop it, after the head.
func checkPlacement(t *testing.T, p Prompt) {
	t.Helper()
	require.Len(t, p.Tokens, p.Length, "%s #%d", p.Task, p.Index)
	for _, s := range p.Needles {
		for pos := s.Start; pos < s.Start+s.Len; pos++ {
			assert.False(t, sdtp.Protected(pos, p.Length), "%s #%d: needle token at %d is protected", p.Task, p.Index, pos)
		}
	}
}

func TestRulerPrompts(t *testing.T) {
	m := tinyModel(t)
	hay := testHaystack(t)
	for _, format := range []Format{{}, {Chat: fakeChat}} {
		g := &Generator{Tok: m, Format: format, Haystack: hay, Seed: 3}
		for _, task := range RulerTasks {
			for _, n := range []int{1024, 1536} {
				var depths []float64
				for i := range 8 {
					p, err := g.Ruler(task, n, i)
					require.NoError(t, err, "%s %s %d #%d", format.Name(), task, n, i)
					checkPlacement(t, p)
					require.NotEmpty(t, p.Answers)
					want := answerTokens[task]
					if format.Chat != nil {
						want += ChatRestatement // room for the restated question
					}
					assert.Equal(t, want, p.AnswerTokens, task)
					assert.LessOrEqual(t, p.AnswerTokens, MaxAnswerTokens())
					text := m.Detokenize(p.Tokens)
					if format.Chat != nil {
						assert.Contains(t, text, "model\n", "%s: the assistant turn is open", task)
					}
					if task == TaskCommonWords {
						assert.Equal(t, -1.0, p.Depth)
						assert.Empty(t, p.Needles)
						for _, w := range p.Answers {
							assert.Greater(t, strings.Count(text, " "+w+","), 3, "a common word is common")
						}
						continue
					}
					// The asked needle holds the answer, at the depth it says.
					asked := m.Detokenize(p.Tokens[p.Needles[0].Start : p.Needles[0].Start+p.Needles[0].Len])
					assert.Contains(t, asked, p.Answers[0], "%s #%d", task, i)
					assert.Equal(t, float64(p.Needles[0].Start)/float64(n), p.Depth)
					for _, a := range p.Answers {
						assert.Contains(t, text, a)
					}
					depths = append(depths, p.Depth)
					// Same inputs, same prompt.
					again, err := g.Ruler(task, n, i)
					require.NoError(t, err)
					assert.Equal(t, p.Tokens, again.Tokens)
				}
				if task == TaskSingleNumber {
					// Spread: 8 prompts put the asked needle in every depth band.
					seen := map[int]bool{}
					for _, d := range depths {
						seen[Band(d)] = true
					}
					assert.Len(t, seen, len(DepthBands)-1, "depths %v", depths)
				}
			}
		}
	}
}

func TestVariableTrackingChainOrder(t *testing.T) {
	m := tinyModel(t)
	g := &Generator{Tok: m, Haystack: testHaystack(t), Seed: 1}
	for i := range 6 {
		p, err := g.Ruler(TaskVarTracking, 1536, i)
		require.NoError(t, err)
		hops := 2 + i%3
		require.Len(t, p.Answers, hops)
		require.Len(t, p.Needles, 2*hops, "two chains")
		text := m.Detokenize(p.Tokens)
		// Each assignment comes after the one it copies.
		for h := 1; h < hops; h++ {
			def := strings.Index(text, fmt.Sprintf("VAR %s = ", p.Answers[h-1]))
			use := strings.Index(text, fmt.Sprintf("VAR %s = VAR %s.", p.Answers[h], p.Answers[h-1]))
			assert.True(t, def >= 0 && use > def, "hop %d of %v", h, p.Answers)
		}
	}
}

func TestAssembleExactBudgetAndProtectedWindow(t *testing.T) {
	m := tinyModel(t)
	hay := testHaystack(t)
	g := &Generator{Tok: m, Haystack: hay, Seed: 5}
	fr, err := frameFor(m, Format{}, "Intro.", "Question?", "Answer:")
	require.NoError(t, err)
	nd, err := m.Tokenize(" Remember this: the hidden number for the owl is 5551234.", false, false)
	require.NoError(t, err)
	fill := func(k int) (filler, error) { return hay.fill(m, k, g.rng("t", 0, 0)) }
	for _, n := range []int{300, 777, 1024} {
		// Outside the protected window even at the extremes.
		for _, frac := range []float64{0, 1} {
			toks, spans, err := assemble(n, fr, []needle{{nd, frac}}, false, fill)
			require.NoError(t, err)
			require.Len(t, toks, n)
			assert.Equal(t, nd, toks[spans[0].Start:spans[0].Start+spans[0].Len])
			assert.False(t, sdtp.Protected(spans[0].Start, n))
			assert.False(t, sdtp.Protected(spans[0].Start+spans[0].Len-1, n))
			assert.GreaterOrEqual(t, spans[0].Start, len(fr.head))
		}
		// Asked for: at the very end of the body, inside the protected tail.
		toks, spans, err := assemble(n, fr, []needle{{nd, 1}}, true, fill)
		require.NoError(t, err)
		require.Len(t, toks, n)
		assert.Equal(t, n-len(fr.tail), spans[0].Start+spans[0].Len)
		assert.True(t, sdtp.Protected(spans[0].Start+spans[0].Len-1, n))
	}
	_, _, err = assemble(40, fr, []needle{{nd, 0.5}}, false, fill)
	assert.Error(t, err, "too short for the needle")
	_, _, err = assemble(1024, fr, []needle{{nd, 1.5}}, false, fill)
	assert.Error(t, err)
}

func TestQAPrompts(t *testing.T) {
	m := tinyModel(t)
	var items []QAItem
	for i := range 30 {
		items = append(items, QAItem{ID: fmt.Sprint(i), Question: fmt.Sprintf("Where is the %s?", nouns[i]),
			Answers: []string{fmt.Sprintf("by the %s", nouns[i+40])},
			Gold: []Doc{{Title: fmt.Sprint("Gold ", i), Text: fmt.Sprintf("The %s is by the %s, people say.", nouns[i], nouns[i+40])},
				{Title: fmt.Sprint("Second ", i), Text: "It was moved there long ago."}},
			Distractors: []Doc{{Title: fmt.Sprint("Own ", i), Text: strings.Repeat("An unrelated story. ", 5)}}})
	}
	set, err := NewQASet(TaskHotpot, items)
	require.NoError(t, err)
	g := &Generator{Tok: m, Seed: 2}
	for i := range 4 {
		p, err := g.QA(set, 1024, i)
		require.NoError(t, err)
		checkPlacement(t, p)
		require.Len(t, p.Needles, 2, "both gold paragraphs")
		text := m.Detokenize(p.Tokens)
		it := set.Items[g.rng(TaskHotpot, 0, 0).Perm(len(items))[i]]
		assert.Equal(t, it.Answers, p.Answers)
		assert.Equal(t, 2, strings.Count(text, "Question: "+it.Question), "the question before and after the documents")
		gold := m.Detokenize(p.Tokens[p.Needles[0].Start : p.Needles[0].Start+p.Needles[0].Len])
		assert.Contains(t, gold, it.Gold[0].Text)
		assert.Contains(t, text, "Own "+it.ID, "the record's own distractor comes first")
		assert.True(t, strings.HasSuffix(text, "Answer:"), "completion prompts end in the answer prefix")
	}
	_, err = NewQASet("qa-bogus", items)
	assert.Error(t, err)
}

func TestSpreadIsPrefixStable(t *testing.T) {
	// Prompt i goes to the i-th van der Corput point, jittered within its
	// cell: the first 2^k - 1 prompts tile the room.
	g := &Generator{Seed: 9}
	cells := [][2]float64{{0.25, 0.75}, {0.125, 0.375}, {0.625, 0.875}, {1.0 / 16, 3.0 / 16}, {9.0 / 16, 11.0 / 16}, {5.0 / 16, 7.0 / 16}, {13.0 / 16, 15.0 / 16}}
	for i, c := range cells {
		f := spread(i, g.rng("t", 1, i))
		assert.True(t, f >= c[0] && f < c[1], "prompt %d at %v, want in %v", i, f, c)
	}
}

func TestHaystackSentences(t *testing.T) {
	text := strings.Repeat("A line that wraps\nin the middle. Another one! Is it? Yes.\n\nNew paragraph", 3)
	h, err := NewHaystack(text)
	require.NoError(t, err)
	assert.Equal(t, text, strings.Join(h.sentences, ""), "nothing lost")
	assert.Equal(t, "A line that wraps\nin the middle.", h.sentences[0], "a wrapped line does not end a sentence")
	assert.Equal(t, []string{" Another one!", " Is it?", " Yes.", "\n\nNew paragraphA line that wraps\nin the middle."}, h.sentences[1:5])
	_, err = NewHaystack("Too short. Really.")
	assert.Error(t, err)
}
