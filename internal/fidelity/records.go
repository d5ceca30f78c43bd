package fidelity

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Record is one answered prompt in one mode: the unit a fidelity run
// caches, so an interrupted run continues where it stopped.
type Record struct {
	// Key identifies what was computed (RecordKey); a record is reused
	// only under the same key.
	Key      string  `json:"key"`
	Model    string  `json:"model"`
	Task     string  `json:"task"`
	Length   int     `json:"length"`
	Index    int     `json:"index"`
	Mode     string  `json:"mode"`
	Schedule string  `json:"schedule"` // the variant's pruning schedule, as text
	Depth    float64 `json:"depth"`
	Output   string  `json:"output"`
	Verdict
	Seconds float64 `json:"seconds"` // prefill and decode time of this answer
	// NeedlesKept is, per needle of the prompt (Prompt.Needles order), the
	// fraction of its tokens that reached the last layer (NeedlesKept):
	// it tells an answer whose fact was pruned away from one whose fact
	// was kept but not used. Absent from records made before it.
	NeedlesKept []float64 `json:"needles_kept,omitempty"`
	// AnswerTokens is the budget the answer was generated under, and
	// EndedEarly says that it ended (end of generation) before it. Greedy
	// decoding makes an answer that ended early the answer under any
	// larger budget too (Records.Answer). Absent from records made before
	// them (chat records of then carry them since: docs/EVALUATION.md).
	AnswerTokens int  `json:"answer_tokens,omitempty"`
	EndedEarly   bool `json:"ended_early,omitempty"`
	// Commit is the code that answered (git HEAD, marked when it had
	// uncommitted changes). It is not part of the key: records made
	// before a change to the pruning code are reused after it, so a
	// measurement of new code starts from empty records.
	Commit string `json:"commit,omitempty"`
}

// RecordKey hashes what an answer depends on: the model's identity, the
// mode and its schedule (including the scorer that ran), the answer budget
// and the prompt's tokens. Any change to one of them is a new key, so a
// cache never serves an answer to a different question.
func RecordKey(model, variant string, answerTokens int, prompt []int32) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00", model, variant, answerTokens)
	binary.Write(h, binary.LittleEndian, prompt)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Records is a directory of JSONL files of Records, one file per model,
// task and length; new records are appended as they are made.
type Records struct {
	dir  string
	byID map[string]Record
}

// OpenRecords reads every *.jsonl file under dir (created if missing). A
// line that does not parse is an error naming the file: a cache is not
// silently dropped.
func OpenRecords(dir string) (*Records, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Records{dir: dir, byID: map[string]Record{}}
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.jsonl"))
	if err != nil {
		return nil, err
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for line := 1; sc.Scan(); line++ {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var rec Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Key == "" {
				f.Close()
				return nil, fmt.Errorf("fidelity: %s:%d: not a record (%v)", path, line, err)
			}
			r.byID[rec.Key] = rec
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("fidelity: %s: %w", path, err)
		}
	}
	return r, nil
}

// Len is the number of records held.
func (r *Records) Len() int { return len(r.byID) }

// Get returns the record under key.
func (r *Records) Get(key string) (Record, bool) {
	rec, ok := r.byID[key]
	return rec, ok
}

// Answer returns the answer for a prompt under budget: the record under
// keyFor(budget), else one under a smaller budget in smaller whose answer
// ended before that budget (greedy decoding would have stopped there
// again). keyFor is RecordKey with everything but the budget fixed.
func (r *Records) Answer(keyFor func(budget int) string, budget int, smaller ...int) (Record, bool) {
	if rec, ok := r.byID[keyFor(budget)]; ok {
		return rec, true
	}
	for _, b := range smaller {
		if rec, ok := r.byID[keyFor(b)]; ok && b < budget && rec.EndedEarly && rec.AnswerTokens == b {
			return rec, true
		}
	}
	return Record{}, false
}

// Add appends rec to its file, DIR/MODEL/TASK-LENGTH.jsonl, and syncs it,
// so a run killed later keeps it.
func (r *Records) Add(rec Record) error {
	dir := filepath.Join(r.dir, safeName(rec.Model))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.jsonl", safeName(rec.Task), rec.Length)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	line, err := json.Marshal(rec)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r.byID[rec.Key] = rec
	return nil
}

// safeName keeps a name usable as a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// NeedlesKept returns, for each needle, the fraction of its tokens that
// reached the last layer of a prefill. droppedAt holds one entry per
// prompt token, 0 for a token kept to the end and the stage that pruned
// it otherwise (sdtp.PrefillResult.DroppedAt). A needle outside droppedAt
// is an error: the prefill was not of this prompt.
func NeedlesKept(needles []Span, droppedAt []int) ([]float64, error) {
	out := make([]float64, len(needles))
	for i, sp := range needles {
		if sp.Len < 1 || sp.Start < 0 || sp.Start+sp.Len > len(droppedAt) {
			return nil, fmt.Errorf("fidelity: needle at tokens %d+%d outside the %d prefilled tokens", sp.Start, sp.Len, len(droppedAt))
		}
		kept := 0
		for _, stage := range droppedAt[sp.Start : sp.Start+sp.Len] {
			if stage == 0 {
				kept++
			}
		}
		out[i] = float64(kept) / float64(sp.Len)
	}
	return out, nil
}
