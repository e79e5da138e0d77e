package sources

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// fixture builds a manifest of three sources (a GitHub folder, a filtered
// CSV, a Go module folder) and an HTTP server that serves their origins.
func fixture(t *testing.T) (*Manifest, []byte, *httptest.Server, map[string][]byte) {
	t.Helper()
	wavA, wavB := []byte("RIFF-a"), []byte("RIFF-b")
	csv := []byte("filename,fold\nz.wav,1\nb.wav,4\nother.wav,2\na.wav,4\n")
	filtered := []byte("filename,fold\na.wav,4\nb.wav,4\n")
	idx := []byte{0, 0, 8, 1, 0, 0, 0, 1, 7}
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	for name, b := range map[string][]byte{
		"example.com/Mod@v1.0.0/data/l.idx": idx,
		"example.com/Mod@v1.0.0/go.mod":     []byte("module example.com/Mod\n"),
	} {
		w, _ := zw.Create(name)
		w.Write(b)
	}
	zw.Close()
	commit := strings.Repeat("ab", 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/own/repo/" + commit + "/audio/a.wav":
			w.Write(wavA)
		case "/own/repo/" + commit + "/audio/b.wav":
			w.Write(wavB)
		case "/own/repo/" + commit + "/meta/all.csv":
			w.Write(csv)
		case "/example.com/!mod/@v/v1.0.0.zip": // module path escaping
			w.Write(zbuf.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	gh := Origin{Kind: "github", Repository: "own/repo", Commit: commit, Path: "audio"}
	m := &Manifest{Sources: []Source{
		{Name: "noise", Dest: "n/audio", MirrorPath: "n/audio", Origin: gh,
			Files: map[string]string{"a.wav": sum(wavA), "b.wav": sum(wavB)}},
		{Name: "meta", Dest: "n", MirrorPath: "n", Origin: Origin{Kind: "github", Repository: "own/repo", Commit: commit, Path: "meta/all.csv", Filter: "rows-of:noise"},
			Files: map[string]string{"meta.csv": sum(filtered)}},
		{Name: "mnist", Dest: "mnist", Origin: Origin{Kind: "gomodule", Module: "example.com/Mod", Version: "v1.0.0", Path: "data"},
			Files: map[string]string{"l.idx": sum(idx)}},
	}}
	b, _ := json.Marshal(m)
	if _, err := Parse(b, "fixture"); err != nil {
		t.Fatal(err)
	}
	return m, b, srv, map[string][]byte{"n/audio/a.wav": wavA, "n/audio/b.wav": wavB, "n/meta.csv": filtered, "mnist/l.idx": idx}
}

func TestFetchDownloads(t *testing.T) {
	m, mb, srv, want := fixture(t)
	data := t.TempDir()
	opt := Options{Data: data, RawBase: srv.URL, GoProxy: srv.URL, Client: srv.Client()}
	res, err := Fetch(context.Background(), m, mb, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Downloaded != 4 {
		t.Fatalf("result %+v", res)
	}
	for rel, b := range want {
		got, err := os.ReadFile(filepath.Join(data, "raw", rel))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %q %v", rel, got, err)
		}
	}
	// A second run finds everything in place and needs no server.
	srv.Close()
	res, err = Fetch(context.Background(), m, mb, opt)
	if err != nil || res.Present != 4 {
		t.Fatalf("second run: %+v %v", res, err)
	}
	if _, err := Verify(m, data, "noise"); err != nil {
		t.Fatal(err)
	}
}

func TestFetchMirrorFailuresNameTheFile(t *testing.T) {
	m, mb, _, want := fixture(t)
	mirror := t.TempDir()
	for rel, b := range want {
		p := filepath.Join(mirror, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b, 0o644)
	}
	os.WriteFile(filepath.Join(mirror, "n/audio/a.wav"), []byte("tampered"), 0o644)
	os.Remove(filepath.Join(mirror, "n/audio/b.wav"))
	data := t.TempDir()
	_, err := Fetch(context.Background(), m, mb, Options{Data: data, Mirror: mirror, MNISTDir: filepath.Join(mirror, "mnist")})
	var fe *FetchError
	if !errors.As(err, &fe) || len(fe.Failed) != 2 {
		t.Fatalf("want 2 failures, got %v", err)
	}
	if fe.Failed[0].File != "n/audio/a.wav" || !errors.Is(fe.Failed[0].Err, ErrChecksum) {
		t.Errorf("first failure: %v", fe.Failed[0])
	}
	if fe.Failed[1].File != "n/audio/b.wav" || !errors.Is(fe.Failed[1].Err, os.ErrNotExist) {
		t.Errorf("second failure: %v", fe.Failed[1])
	}
	// The tampered file must not have been left in place.
	if _, err := os.Stat(filepath.Join(data, "raw", "n/audio/a.wav")); !os.IsNotExist(err) {
		t.Errorf("bad file left behind: %v", err)
	}
	if _, err := os.Stat(ManifestCopy(data)); !os.IsNotExist(err) {
		t.Errorf("manifest copy written despite failures")
	}
	if _, err := Verify(m, data, "noise"); err == nil || !strings.Contains(err.Error(), "run m2mix fetch") {
		t.Errorf("verify of missing files: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	good := `{"name":"s","dest":"d","origin":{"kind":"github","repository":"o/r","commit":"` + strings.Repeat("a", 40) + `","path":"p"},"files":{"f":"` + strings.Repeat("0", 64) + `"}}`
	cases := []struct{ name, src, want string }{
		{"ok", good, ""},
		{"short commit", strings.Replace(good, strings.Repeat("a", 40), "abc", 1), "40-character"},
		{"bad sum", strings.Replace(good, strings.Repeat("0", 64), "xyz", 1), "not a hex sha256"},
		{"path in name", strings.Replace(good, `"f":`, `"../f":`, 1), "plain name"},
		{"escaping dest", strings.Replace(good, `"dest":"d"`, `"dest":"../d"`, 1), "clean relative"},
		{"unknown kind", strings.Replace(good, `"kind":"github"`, `"kind":"ftp"`, 1), "unknown origin kind"},
		{"unknown field", strings.Replace(good, `"name":"s"`, `"name":"s","x":1`, 1), "unknown field"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(`{"sources":[`+c.src+`]}`), "m.json")
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// TestPinnedManifest checks the committed manifest: it parses, and where the
// shared mirror is present, its pins agree with the mirror's own SHA256SUMS.
func TestPinnedManifest(t *testing.T) {
	m, err := Load(filepath.Join("..", "..", "manifests", "sources.json"))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{"mnist": 4, "fsdd": 3000, "esc50": 50, "esc50-meta": 1}
	for name, n := range counts {
		s, err := m.Source(name)
		if err != nil || len(s.Files) != n {
			t.Fatalf("%s: %v files, %v", name, len(s.Files), err)
		}
	}
	for _, c := range []struct{ src, sums string }{
		{"fsdd", "fsdd/SHA256SUMS"}, {"esc50", "esc50/SHA256SUMS"},
	} {
		f, err := os.Open(filepath.Join("..", "..", "..", "shared", "data", c.sums))
		if err != nil {
			t.Skip("shared data mirror not present")
		}
		s, _ := m.Source(c.src)
		sc := bufio.NewScanner(f)
		n := 0
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) != 2 || s.Files[fields[1]] != fields[0] {
				t.Fatalf("%s: line %q disagrees with the manifest", c.sums, sc.Text())
			}
			n++
		}
		f.Close()
		if n != len(s.Files) {
			t.Fatalf("%s: %d lines, manifest has %d files", c.sums, n, len(s.Files))
		}
	}
}

func TestFilterRows(t *testing.T) {
	in := []byte("h1,h2\r\nb,2\r\nc,3\r\na,1")
	got, err := FilterRows(in, map[string]string{"a": "", "b": ""})
	if err != nil || string(got) != "h1,h2\r\na,1\r\nb,2\r\n" {
		t.Fatalf("%q %v", got, err)
	}
}
