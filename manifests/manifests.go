// Package manifests embeds the project's data files — pinned sources,
// experiment configurations (one per paper row), run profiles, sweeps and the
// paper's reported numbers — so the binary works from any folder.
package manifests

import (
	"embed"
	"os"
	"strings"
)

//go:embed sources.json paper-results.json claims.json configs/*.json profiles/*.json avmnist-variants/*.json sweeps/*.json
var files embed.FS

// Read returns the file at path: from disk when it exists there (so a user
// can edit or add manifests), else the embedded copy of "manifests/<name>".
func Read(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil || !os.IsNotExist(err) {
		return b, err
	}
	if rel, ok := strings.CutPrefix(path, "manifests/"); ok {
		if eb, eerr := files.ReadFile(rel); eerr == nil {
			return eb, nil
		}
	}
	return nil, err
}

// Embedded lists the embedded files under dir (e.g. "configs").
func Embedded(dir string) ([]string, error) {
	ents, err := files.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, dir+"/"+e.Name())
	}
	return out, nil
}
