package avmnist

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPackRoundTrip: a pack gives back exactly the inputs it was made from,
// and the datasets generated from it are byte for byte those generated from
// the inputs directly.
func TestPackRoundTrip(t *testing.T) {
	in := fixtureInputs()
	for i := range in.Speech { // the fixture's tones quantised to 16-bit PCM, as WAV files are
		for j, v := range in.Speech[i].Samples {
			in.Speech[i].Samples[j] = math.Round(v*32768) / 32768
		}
	}
	path := filepath.Join(t.TempDir(), "inputs.pack")
	if err := WritePack(path, in); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPack(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, back) {
		t.Fatal("the pack's inputs differ from the originals")
	}
	in.Checksums["source.other"] = "1" // two keys: map order must not reach the bytes
	again := filepath.Join(t.TempDir(), "again.pack")
	WritePack(path, in)
	WritePack(again, in)
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Fatal("the same inputs gave two different packs")
	}
	delete(in.Checksums, "source.other")
	direct, _ := generateTo(t, in, 5, 2)
	packed, _ := generateTo(t, back, 5, 2)
	for _, f := range []string{TrainFile, ValidationFile, TestFile} {
		if direct.SHA256[f] != packed.SHA256[f] {
			t.Errorf("%s: generated from the pack %s, directly %s", f, packed.SHA256[f], direct.SHA256[f])
		}
	}
}

// TestPackErrors: samples that are not 16-bit PCM are refused with the
// recording's name, a truncated pack and a file of another kind are named
// errors, and a failed write leaves no file behind.
func TestPackErrors(t *testing.T) {
	dir := t.TempDir()
	in := fixtureInputs() // unquantised tones
	bad := filepath.Join(dir, "bad.pack")
	if err := WritePack(bad, in); err == nil || !strings.Contains(err.Error(), in.Speech[0].Name) {
		t.Fatalf("non-PCM samples: %v", err)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatal("a failed write left a file")
	}
	in.Speech = nil
	good := filepath.Join(dir, "good.pack")
	if err := WritePack(good, in); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	short := filepath.Join(dir, "short.pack")
	os.WriteFile(short, b[:len(b)/2], 0o644)
	if _, err := ReadPack(short); err == nil || !strings.Contains(err.Error(), short) {
		t.Fatalf("truncated pack: %v", err)
	}
	other := filepath.Join(dir, "other.pack")
	os.WriteFile(other, []byte("not a pack at all"), 0o644)
	if _, err := ReadPack(other); err == nil || !strings.Contains(err.Error(), other) {
		t.Fatalf("not a pack: %v", err)
	}
}
