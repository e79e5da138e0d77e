package avmnist

import (
	"bufio"
	"encoding/gob"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"

	"github.com/m2mix/m2mix/artifact"
)

// An inputs pack is everything generation reads, decoded, in one
// compressed file: MNIST's pixels and labels, the four speakers' recordings
// (16-bit PCM, as in the WAV files) and the noise clips already resampled to
// 8 kHz (float64, exactly what generation mixes in). It is the small thing
// to carry to a machine without the internet or room for the raw sources
// (a GPU machine takes 64 MiB): about 38 MB, where the raw files are 60.
// It keeps the raw sources' checksums, so datasets generated from a pack
// are byte for byte those generated from the raw files; the same inputs
// give the same pack bytes.
const packMagic = "m2mix avmnist inputs v1"

type packFile struct {
	Magic       string
	Train, Test MNIST
	Speech      []packRecording
	Noise       []Clip
	Checksums   [][2]string // sorted (name, sha256): gob writes maps in random order
}

type packRecording struct {
	Name    string
	Digit   int
	Speaker string
	Take    int
	PCM     []int16
}

// WritePack stores in as an inputs pack at path (temp file, then rename).
func WritePack(path string, in *Inputs) error {
	p := packFile{Magic: packMagic, Train: in.Train, Test: in.Test, Noise: in.Noise}
	for _, k := range slices.Sorted(maps.Keys(in.Checksums)) {
		p.Checksums = append(p.Checksums, [2]string{k, in.Checksums[k]})
	}
	for _, r := range in.Speech {
		pcm := make([]int16, len(r.Samples))
		for i, v := range r.Samples {
			s := math.Round(v * 32768)
			if s < math.MinInt16 || s > math.MaxInt16 || s/32768 != v {
				return fmt.Errorf("pack %s: %s sample %d (%v) is not 16-bit PCM", path, r.Name, i, v)
			}
			pcm[i] = int16(s)
		}
		p.Speech = append(p.Speech, packRecording{Name: r.Name, Digit: r.Digit, Speaker: r.Speaker, Take: r.Take, PCM: pcm})
	}
	f, err := artifact.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriter(f)
	z, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	if err != nil {
		return fmt.Errorf("pack %s: %w", path, err)
	}
	if err := gob.NewEncoder(z).Encode(&p); err != nil {
		z.Close()
		return fmt.Errorf("pack %s: %w", path, err)
	}
	if err := z.Close(); err != nil {
		return fmt.Errorf("pack %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("pack %s: %w", path, err)
	}
	return f.Commit()
}

// ReadPack loads an inputs pack written by WritePack.
func ReadPack(path string) (*Inputs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inputs pack: %w", err)
	}
	defer f.Close()
	z, err := zstd.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("inputs pack %s: %w", path, err)
	}
	defer z.Close()
	var p packFile
	if err := gob.NewDecoder(z).Decode(&p); err != nil {
		return nil, fmt.Errorf("inputs pack %s: not an m2mix inputs pack, or truncated: %w", path, err)
	}
	if p.Magic != packMagic {
		return nil, fmt.Errorf("inputs pack %s: format %q, want %q", path, p.Magic, packMagic)
	}
	if len(p.Train.Pixels) != len(p.Train.Labels)*ImageSize || len(p.Test.Pixels) != len(p.Test.Labels)*ImageSize {
		return nil, fmt.Errorf("inputs pack %s: MNIST pixels and labels disagree", path)
	}
	in := &Inputs{Train: p.Train, Test: p.Test, Noise: p.Noise, Checksums: map[string]string{}}
	for _, kv := range p.Checksums {
		in.Checksums[kv[0]] = kv[1]
	}
	for _, r := range p.Speech {
		s := make([]float64, len(r.PCM))
		for i, v := range r.PCM {
			s[i] = float64(v) / 32768
		}
		in.Speech = append(in.Speech, Recording{Name: r.Name, Digit: r.Digit, Speaker: r.Speaker, Take: r.Take, Samples: s})
	}
	return in, nil
}

// PrepPack generates AV-MNIST from an inputs pack and writes the datasets
// into <data>/avmnist: the same bytes PrepRaw writes from the raw sources.
func PrepPack(data, pack string, p Params) (*Result, *Output, error) {
	return prep(data, p, func() (*Inputs, error) { return ReadPack(pack) })
}
