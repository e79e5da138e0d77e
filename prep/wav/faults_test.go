package wav

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A WAV with no samples, one cut short (the RIFF header promises more than
// the file holds, or a chunk header is cut) and one with bytes beyond what
// the RIFF header covers are refused, naming the file.
func TestEmptyOrCutWAV(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "mono16.wav"))
	if err != nil {
		t.Fatal(err)
	}
	// mono16.wav: RIFF header, 16-byte fmt chunk, data chunk of 10 bytes at 36.
	noSamples := append([]byte(nil), good[:44]...)
	binary.LittleEndian.PutUint32(noSamples[4:], 36)
	binary.LittleEndian.PutUint32(noSamples[40:], 0)
	riffTooBig := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(riffTooBig[4:], uint32(len(good)))
	cutHeader := append(append([]byte(nil), good...), 'L', 'I', 'S', 'T', 4)
	binary.LittleEndian.PutUint32(cutHeader[4:], uint32(len(cutHeader)-8))
	trailing := append(append([]byte(nil), good...), 'J', 'U', 'N', 'K', 0, 0, 0, 0) // a whole chunk the RIFF size leaves out
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"no samples", noSamples, "no samples"},
		{"RIFF size beyond the file", riffTooBig, "RIFF header declares 54 bytes after it, the file has 46"},
		{"cut chunk header", cutHeader, "truncated: 5 bytes at byte 54"},
		{"bytes beyond the RIFF size", trailing, "RIFF header declares 46 bytes after it, the file has 54"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.wav")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			a, err := Read(p)
			if err == nil {
				t.Fatalf("accepted: %d samples", len(a.Samples))
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should name the file and say %q", err, c.want)
			}
		})
	}
}
