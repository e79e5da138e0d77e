// Package wav reads the PCM WAV files of the audio sources (FSDD speech,
// ESC-50 noise).
//
// The recipe expects 16-bit mono PCM with at least one sample; anything else (stereo, 8/24/32-bit,
// float or compressed formats) is refused with an error naming the file and
// the problem. The RIFF chunk structure is checked against the file size
// before github.com/go-audio/wav decodes the samples, so truncated or forged
// files fail cleanly and can never make the decoder allocate more than the
// file holds.
package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	gowav "github.com/go-audio/wav"
)

// Audio is a mono 16-bit recording.
type Audio struct {
	SampleRate int
	Samples    []int16
}

// Float returns the samples scaled to [-1, 1) by 1/32768, the convention of
// scipy/librosa loaders for 16-bit PCM.
func (a *Audio) Float() []float64 {
	out := make([]float64, len(a.Samples))
	for i, s := range a.Samples {
		out[i] = float64(s) / 32768
	}
	return out
}

// Read decodes the WAV file at path.
func Read(path string) (*Audio, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	a, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// format is the part of the fmt chunk we check.
type format struct {
	tag, channels uint16
	rate          uint32
	bits          uint16
}

// Decode parses a whole WAV file held in b.
func Decode(b []byte) (a *Audio, err error) {
	f, dataLen, err := scan(b)
	if err != nil {
		return nil, err
	}
	// go-audio/wav is not hardened against every malformed input; the scan
	// above rules out the cases we know of, and this turns anything left into
	// an error instead of a crash.
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, fmt.Errorf("corrupt WAV: decoder failed: %v", r)
		}
	}()
	d := gowav.NewDecoder(bytes.NewReader(b))
	buf, err := d.FullPCMBuffer()
	if err != nil {
		return nil, fmt.Errorf("corrupt WAV: %w", err)
	}
	if int(d.NumChans) != int(f.channels) || int(d.BitDepth) != int(f.bits) || d.SampleRate != f.rate {
		return nil, fmt.Errorf("corrupt WAV: decoder read format %d ch/%d bit/%d Hz, header says %d/%d/%d",
			d.NumChans, d.BitDepth, d.SampleRate, f.channels, f.bits, f.rate)
	}
	if len(buf.Data) != dataLen/2 {
		return nil, fmt.Errorf("corrupt WAV: decoded %d samples, data chunk holds %d", len(buf.Data), dataLen/2)
	}
	out := &Audio{SampleRate: int(f.rate), Samples: make([]int16, len(buf.Data))}
	for i, v := range buf.Data {
		out.Samples[i] = int16(v)
	}
	return out, nil
}

// scan walks the RIFF chunks, checks every size against the bytes present
// and the format against what the recipe needs. It returns the data chunk's
// length in bytes.
func scan(b []byte) (format, int, error) {
	var f format
	if len(b) < 12 {
		return f, 0, fmt.Errorf("truncated: %d bytes is shorter than a RIFF header", len(b))
	}
	if string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return f, 0, errors.New("not a WAV file (no RIFF/WAVE header)")
	}
	haveFmt, dataLen := false, -1
	off := 12
	for off+8 <= len(b) {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		if size > len(b)-body {
			return f, 0, fmt.Errorf("truncated: chunk %q at byte %d declares %d bytes, only %d present", id, off, size, len(b)-body)
		}
		switch id {
		case "fmt ":
			if haveFmt {
				return f, 0, errors.New("corrupt WAV: two fmt chunks")
			}
			if size < 16 {
				return f, 0, fmt.Errorf("corrupt WAV: fmt chunk of %d bytes (need 16)", size)
			}
			c := b[body:]
			f = format{
				tag:      binary.LittleEndian.Uint16(c[0:]),
				channels: binary.LittleEndian.Uint16(c[2:]),
				rate:     binary.LittleEndian.Uint32(c[4:]),
				bits:     binary.LittleEndian.Uint16(c[14:]),
			}
			haveFmt = true
		case "data":
			if dataLen >= 0 {
				return f, 0, errors.New("corrupt WAV: two data chunks")
			}
			if !haveFmt {
				return f, 0, errors.New("corrupt WAV: data chunk before the fmt chunk")
			}
			dataLen = size
		}
		// Chunks are word aligned: an odd size is followed by a pad byte.
		off = body + size + size%2
	}
	riff := int64(binary.LittleEndian.Uint32(b[4:8]))
	switch {
	case !haveFmt:
		return f, 0, errors.New("corrupt WAV: no fmt chunk")
	case dataLen < 0:
		return f, 0, errors.New("corrupt WAV: no data chunk")
	case f.tag != 1:
		return f, 0, fmt.Errorf("unsupported WAV encoding %d (need 1, integer PCM)", f.tag)
	case f.channels != 1:
		return f, 0, fmt.Errorf("unsupported WAV: %d channels (need mono)", f.channels)
	case f.bits != 16:
		return f, 0, fmt.Errorf("unsupported WAV: %d-bit samples (need 16-bit)", f.bits)
	case f.rate == 0:
		return f, 0, errors.New("corrupt WAV: sample rate 0")
	case dataLen%2 != 0:
		return f, 0, fmt.Errorf("corrupt WAV: data chunk of %d bytes is not whole 16-bit samples", dataLen)
	case dataLen == 0:
		return f, 0, errors.New("empty WAV: the data chunk holds no samples")
	case off < len(b):
		// Fewer than 8 bytes left: the start of a chunk header, cut short.
		return f, 0, fmt.Errorf("truncated: %d bytes at byte %d are too few for a chunk header", len(b)-off, off)
	case riff != int64(len(b)-8):
		// Bigger: the file was cut (at a chunk boundary); smaller: bytes
		// that are not part of the RIFF file were appended.
		return f, 0, fmt.Errorf("truncated or corrupt WAV: the RIFF header declares %d bytes after it, the file has %d", riff, len(b)-8)
	}
	return f, dataLen, nil
}
