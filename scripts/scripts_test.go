// Package scripts holds the project's shell scripts; it has no Go code, only
// tests that run the scripts on fixtures.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebianMirror runs debian-mirror.sh on fixture apt configurations: it
// must pick the main archive of the host's codename from one-line and
// deb822 sources (not a security or third-party source, not a commented
// line), let DEBIAN_MIRROR win, and fail with a reason when there is none.
func TestDebianMirror(t *testing.T) {
	const release = "VERSION_CODENAME=bookworm\n"
	for _, c := range []struct {
		name  string
		files map[string]string
		env   string
		want  string // "" means: must fail
	}{
		{name: "deb822", files: map[string]string{"sources.list.d/debian.sources": `Types: deb
# URIs: http://commented.example/debian
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://archive.example/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
`, "sources.list.d/other.sources": "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\n"}, want: "http://archive.example/debian"},
		{name: "one-line", files: map[string]string{"sources.list": `# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://lab-cache.example/debian bookworm main contrib
deb http://security.example/debian-security bookworm-security main
`}, want: "http://lab-cache.example/debian"},
		{name: "list before sources", files: map[string]string{
			"sources.list.d/a.list":    "deb http://list.example/debian bookworm main\n",
			"sources.list.d/b.sources": "Types: deb\nURIs: http://deb822.example/debian\nSuites: bookworm\n"}, want: "http://list.example/debian"},
		{name: "DEBIAN_MIRROR wins", files: map[string]string{"sources.list": "deb http://archive.example/debian bookworm main\n"},
			env: "http://given.example/debian/", want: "http://given.example/debian"},
		{name: "only other codenames", files: map[string]string{"sources.list": "deb http://archive.example/debian trixie main\n",
			"sources.list.d/x.sources": "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			etc := filepath.Join(dir, "apt")
			for name, body := range c.files {
				p := filepath.Join(etc, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rel := filepath.Join(dir, "os-release")
			if err := os.WriteFile(rel, []byte(release), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", "debian-mirror.sh")
			cmd.Env = append(os.Environ(), "APT_ETC="+etc, "OS_RELEASE="+rel, "DEBIAN_MIRROR="+c.env)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			got := strings.TrimSpace(string(out))
			if c.want == "" {
				if err == nil || !strings.Contains(stderr.String(), "set DEBIAN_MIRROR") {
					t.Fatalf("want a failure saying to set DEBIAN_MIRROR; got %q, %v, %q", got, err, stderr.String())
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q (%v, %s), want %q", got, err, stderr.String(), c.want)
			}
		})
	}
}

// TestMakeStopsOnOldGo: make refuses a Go older than go.mod asks for with
// one line naming both versions, before building anything.
func TestMakeStopsOnOldGo(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	fake := filepath.Join(t.TempDir(), "go")
	script := "#!/bin/sh\n[ \"$1 $2\" = \"env GOVERSION\" ] && echo go1.19.8 && exit 0\necho 'fake go: only env GOVERSION' >&2\nexit 1\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-s", "-C", "..", "build", "GO="+fake).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err == nil || !strings.Contains(lines[0], "needs Go 1.") || !strings.Contains(lines[0], "is 1.19.8") || strings.Contains(string(out), "g++") {
		t.Fatalf("make with Go 1.19: %v\n%s", err, out)
	}
}
