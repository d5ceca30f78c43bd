package fetch

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// pep691 is the media type of the JSON simple API (PEP 691).
const pep691 = "application/vnd.pypi.simple.v1+json"

// index is a PEP 691 package index.
type index struct {
	root   string // e.g. https://pypi.org/simple
	client *http.Client
}

func newIndex() index {
	root := os.Getenv(IndexEnv)
	if root == "" {
		root = DefaultIndex
	}
	return index{root: strings.TrimSuffix(root, "/"), client: &http.Client{
		// No overall timeout: a wheel may take minutes.
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: time.Minute,
			TLSHandshakeTimeout:   30 * time.Second,
		},
	}}
}

// wheelFile is one entry of a project page's "files".
type wheelFile struct {
	Filename string            `json:"filename"`
	URL      string            `json:"url"`
	Hashes   map[string]string `json:"hashes"`
	Size     int64             `json:"size"`
	Yanked   any               `json:"yanked"` // false, or a reason string
}

var separators = regexp.MustCompile(`[-_.]+`)

// normalize is PEP 503's project-name normalisation.
func normalize(project string) string {
	return strings.ToLower(separators.ReplaceAllString(project, "-"))
}

// find returns w's wheel file on the index: its absolute URL, sha256 and
// size. The index's sha256 must equal the pinned one when w pins it.
func (ix index) find(w Wheel) (wheelFile, error) {
	page := ix.root + "/" + normalize(w.Project) + "/"
	req, err := http.NewRequest(http.MethodGet, page, nil)
	if err != nil {
		return wheelFile{}, err
	}
	req.Header.Set("Accept", pep691)
	req.Header.Set("User-Agent", "go-sdtp-fetch")
	resp, err := ix.client.Do(req)
	if err != nil {
		return wheelFile{}, fmt.Errorf("package index: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wheelFile{}, fmt.Errorf("package index: GET %s: %s", page, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != pep691 {
		return wheelFile{}, fmt.Errorf("package index %s answered %q, not PEP 691 JSON (%s); set %s to an index that serves it",
			ix.root, mt, pep691, IndexEnv)
	}
	var body struct {
		Files []wheelFile `json:"files"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&body); err != nil {
		return wheelFile{}, fmt.Errorf("package index: %s: %w", page, err)
	}
	// Wheel file names spell the project with underscores (PEP 427).
	prefix := strings.ReplaceAll(normalize(w.Project), "-", "_") + "-" + w.Version + "-"
	for _, f := range body.Files {
		if !strings.HasPrefix(strings.ToLower(f.Filename), prefix) || !strings.HasSuffix(f.Filename, ".whl") {
			continue
		}
		sha := strings.ToLower(f.Hashes["sha256"])
		switch {
		case sha == "":
			return wheelFile{}, fmt.Errorf("package index: %s lists no sha256 for %s", page, f.Filename)
		case w.SHA256 != "" && sha != w.SHA256:
			return wheelFile{}, fmt.Errorf("%w: the index lists %s with sha256 %s, pinned %s", ErrChecksum, f.Filename, sha, w.SHA256)
		}
		u, err := url.Parse(page)
		if err != nil {
			return wheelFile{}, err
		}
		ref, err := u.Parse(f.URL) // URLs may be relative to the page
		if err != nil {
			return wheelFile{}, fmt.Errorf("package index: %s: bad URL %q: %w", page, f.URL, err)
		}
		f.URL, f.Hashes = ref.String(), map[string]string{"sha256": sha}
		return f, nil
	}
	return wheelFile{}, fmt.Errorf("package index: %s has no wheel for version %s", page, w.Version)
}

// download streams a wheel to dst.
func (ix index) download(f wheelFile, dst io.Writer) error {
	req, err := http.NewRequest(http.MethodGet, f.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "go-sdtp-fetch")
	resp, err := ix.client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", f.Filename, resp.Status)
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		return fmt.Errorf("download %s: %w", f.Filename, err)
	}
	return nil
}
