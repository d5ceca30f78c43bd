package fidelity

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Training prompts are other draws than the suite's, placed by the same
// rules, and never ask a question the suite's first TestQuestions prompts
// ask.
func TestTrainingPromptsAvoidTheSuite(t *testing.T) {
	m := tinyModel(t)
	suite := &Generator{Tok: m, Haystack: testHaystack(t), Seed: 1}
	training := suite.ForTraining()
	for _, task := range []string{TaskSingleNumber, TaskMultiValue, TaskVarTracking} {
		for i := range 3 {
			p, err := suite.Ruler(task, 512, i)
			require.NoError(t, err)
			q, err := training.Ruler(task, 512, i)
			require.NoError(t, err)
			checkPlacement(t, q)
			assert.NotEqual(t, p.Answers, q.Answers, "%s #%d: other values", task, i)
		}
	}

	var items []QAItem
	for i := range TestQuestions + 60 {
		items = append(items, QAItem{ID: fmt.Sprint(i), Question: fmt.Sprintf("What is item %d?", i),
			Answers: []string{fmt.Sprint("answer ", i)}, Gold: []Doc{{Text: fmt.Sprintf("Item %d is answer %d.", i, i)}}})
	}
	set, err := NewQASet(TaskSQuAD, items)
	require.NoError(t, err)
	asked := map[string]bool{}
	for i := range TestQuestions {
		p, err := suite.QA(set, 256, i)
		require.NoError(t, err)
		asked[p.Answers[0]] = true
	}
	require.Len(t, asked, TestQuestions, "the suite's first prompts ask distinct questions")
	left, err := suite.WithoutTestQuestions(set)
	require.NoError(t, err)
	require.Len(t, left.Items, 60)
	for i := range 60 {
		p, err := training.QA(left, 256, i)
		require.NoError(t, err)
		checkPlacement(t, p)
		assert.False(t, asked[p.Answers[0]], "training prompt %d asks a test question", i)
	}
}

func TestReferenceAnswer(t *testing.T) {
	needles := Prompt{Answers: []string{"1234567", "7654321"}}
	assert.Equal(t, " 1234567, 7654321", needles.Reference(Format{}), "after a completion prompt's answer prefix")
	assert.Equal(t, "1234567, 7654321", needles.Reference(Format{Chat: fakeChat}), "the assistant turn's first words")
	qa := Prompt{QA: true, Answers: []string{"Denver Broncos", "The Broncos"}}
	assert.Equal(t, "Denver Broncos", qa.Reference(Format{Chat: fakeChat}), "one gold answer")
}
