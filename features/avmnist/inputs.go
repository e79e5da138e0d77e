// Package avmnist builds the AV-MNIST dataset (reproduction.md §5): MNIST
// images reduced by PCA, paired with FSDD spoken digits mixed with ESC-50
// noise and rendered as 112 x 112 spectrograms; or imports the public
// AV-MNIST .npy files into the same format. Both write Arrow datasets
// (train / validation / test), a manifest and a sample sheet.
//
// Generation is deterministic: every sample is computed independently into
// its own slot, so the output bytes do not depend on the number of cores.
package avmnist

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"

	"github.com/m2mix/m2mix/features/audio"
	"github.com/m2mix/m2mix/internal/parallel"
	"github.com/m2mix/m2mix/prep/idx"
	"github.com/m2mix/m2mix/prep/sources"
	"github.com/m2mix/m2mix/prep/wav"
)

// Recipe constants (reproduction.md §5).
const (
	SpeechRate = 8000
	// TrainTakes: takes 0..TrainTakes-1 form the training pool, the rest
	// (up to 49) the test pool.
	TrainTakes = 40
	MaxTake    = 49
	// NoiseClasses is the number of ESC-50 classes; NoiseTrain of the drawn
	// clips serve training, the rest test.
	NoiseClasses = 50
	NoiseTrain   = 40
	KeepVariance = 0.25
	ImageSide    = 28
	ImageSize    = ImageSide * ImageSide
)

// speakers are FSDD's four original speakers, the ones the recipe uses.
var speakers = [...]string{"jackson", "nicolas", "theo", "yweweler"}

// Recording is one FSDD clip.
type Recording struct {
	Name    string // file name, e.g. 3_theo_7.wav
	Digit   int
	Speaker string
	Take    int
	Samples []float64 // 8 kHz, in [-1, 1)
}

// Clip is one ESC-50 noise clip, already resampled to 8 kHz.
type Clip struct {
	Name    string // file name, e.g. 4-102844-A-49.wav
	Class   int    // ESC-50 target 0..49
	Samples []float64
}

// MNIST holds one MNIST split.
type MNIST struct {
	Pixels []uint8 // n x 784
	Labels []uint8
}

// Inputs is everything generation reads.
type Inputs struct {
	Train, Test MNIST
	Speech      []Recording
	// Noise holds every available noise clip (the draw picks one per class).
	Noise []Clip
	// Checksums of the raw sources, recorded in the datasets' metadata.
	Checksums map[string]string
}

var (
	fsddName = regexp.MustCompile(`^([0-9])_([a-z]+)_([0-9]+)\.wav$`)
	escName  = regexp.MustCompile(`^[0-9]+-[0-9]+-[A-Z]+-([0-9]+)\.wav$`)
)

// ParseFSDDName splits {digit}_{speaker}_{take}.wav.
func ParseFSDDName(name string) (digit int, speaker string, take int, err error) {
	m := fsddName.FindStringSubmatch(name)
	if m == nil {
		return 0, "", 0, fmt.Errorf("FSDD file name %q is not {digit}_{speaker}_{take}.wav", name)
	}
	digit, _ = strconv.Atoi(m[1])
	take, err = strconv.Atoi(m[3])
	if err != nil {
		return 0, "", 0, fmt.Errorf("FSDD file name %q: %w", name, err)
	}
	return digit, m[2], take, nil
}

// ParseESCClass returns the target class of {fold}-{src}-{take}-{target}.wav.
func ParseESCClass(name string) (int, error) {
	m := escName.FindStringSubmatch(name)
	if m == nil {
		return 0, fmt.Errorf("ESC-50 file name %q is not {fold}-{src}-{take}-{target}.wav", name)
	}
	c, err := strconv.Atoi(m[1])
	if err != nil || c < 0 || c >= NoiseClasses {
		return 0, fmt.Errorf("ESC-50 file name %q: class out of range 0..%d", name, NoiseClasses-1)
	}
	return c, nil
}

func isSpeaker(s string) bool {
	for _, sp := range speakers {
		if s == sp {
			return true
		}
	}
	return false
}

// LoadRaw reads the fetched raw sources from <data>/raw, verifying every
// file against the pinned checksums first.
func LoadRaw(data string) (*Inputs, error) {
	m, err := sources.Load(sources.ManifestCopy(data))
	if err != nil {
		return nil, fmt.Errorf("%w (run m2mix fetch first)", err)
	}
	in := &Inputs{Checksums: map[string]string{}}
	dirs := map[string]string{}
	for _, name := range []string{"mnist", "fsdd", "esc50"} {
		dir, err := sources.Verify(m, data, name)
		if err != nil {
			return nil, err
		}
		dirs[name] = dir
		s, _ := m.Source(name)
		in.Checksums["source."+name+".sha256sums"] = s.Digest()
		if name == "mnist" {
			for f, sum := range s.Files {
				in.Checksums["source.mnist."+f] = sum
			}
		}
	}
	var errs [4]error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		in.Train, errs[0] = loadMNIST(dirs["mnist"], "train")
		in.Test, errs[1] = loadMNIST(dirs["mnist"], "t10k")
	}()
	go func() {
		defer wg.Done()
		s, _ := m.Source("fsdd")
		in.Speech, errs[2] = loadSpeech(dirs["fsdd"], s.Names())
	}()
	s, _ := m.Source("esc50")
	in.Noise, errs[3] = loadNoise(dirs["esc50"], s.Names())
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// LoadMNIST reads MNIST's two splits from the fetched raw sources in
// <data>/raw, verified against the pinned checksums (what audits compare
// datasets with).
func LoadMNIST(data string) (train, test MNIST, err error) {
	m, err := sources.Load(sources.ManifestCopy(data))
	if err != nil {
		return MNIST{}, MNIST{}, fmt.Errorf("%w (run m2mix fetch first)", err)
	}
	dir, err := sources.Verify(m, data, "mnist")
	if err != nil {
		return MNIST{}, MNIST{}, err
	}
	if train, err = loadMNIST(dir, "train"); err != nil {
		return MNIST{}, MNIST{}, err
	}
	test, err = loadMNIST(dir, "t10k")
	return train, test, err
}

func loadMNIST(dir, prefix string) (MNIST, error) {
	_, r, c, pix, labels, err := idx.ReadImagesAndLabels(filepath.Join(dir, prefix+"-images-idx3-ubyte.gz"), filepath.Join(dir, prefix+"-labels-idx1-ubyte.gz"))
	if err != nil {
		return MNIST{}, err
	}
	if r != ImageSide || c != ImageSide {
		return MNIST{}, fmt.Errorf("MNIST %s images are %dx%d, want 28x28", prefix, r, c)
	}
	return MNIST{Pixels: pix, Labels: labels}, nil
}

// loadSpeech reads the recordings of the four speakers among names.
func loadSpeech(dir string, names []string) ([]Recording, error) {
	var recs []Recording
	for _, name := range names {
		d, sp, take, err := ParseFSDDName(name)
		if err != nil {
			return nil, err
		}
		if !isSpeaker(sp) || take > MaxTake {
			continue
		}
		recs = append(recs, Recording{Name: name, Digit: d, Speaker: sp, Take: take})
	}
	err := parallel.Each(len(recs), func(i int) error {
		a, err := wav.Read(filepath.Join(dir, recs[i].Name))
		if err != nil {
			return err
		}
		if a.SampleRate != SpeechRate {
			return fmt.Errorf("%s: %d Hz, want %d", recs[i].Name, a.SampleRate, SpeechRate)
		}
		recs[i].Samples = a.Float()
		return nil
	})
	return recs, err
}

// loadNoise reads and resamples every ESC-50 clip among names.
func loadNoise(dir string, names []string) ([]Clip, error) {
	clips := make([]Clip, 0, len(names))
	for _, name := range names {
		c, err := ParseESCClass(name)
		if err != nil {
			return nil, err
		}
		clips = append(clips, Clip{Name: name, Class: c})
	}
	rs := map[int]*audio.Resampler{}
	var mu sync.Mutex
	err := parallel.Each(len(clips), func(i int) error {
		a, err := wav.Read(filepath.Join(dir, clips[i].Name))
		if err != nil {
			return err
		}
		mu.Lock()
		r := rs[a.SampleRate]
		if r == nil {
			if r, err = audio.NewResampler(a.SampleRate, SpeechRate); err != nil {
				mu.Unlock()
				return err
			}
			rs[a.SampleRate] = r
		}
		mu.Unlock()
		clips[i].Samples = r.Resample(a.Float())
		return nil
	})
	return clips, err
}

// Pools returns, for one split, the recordings of each digit in sorted
// file-name order: takes 0..39 for train, 40..49 for test.
func Pools(recs []Recording, train bool) ([10][]*Recording, error) {
	var pools [10][]*Recording
	for i := range recs {
		r := &recs[i]
		if !isSpeaker(r.Speaker) || r.Take > MaxTake || (r.Take < TrainTakes) != train {
			continue
		}
		pools[r.Digit] = append(pools[r.Digit], r)
	}
	for d := range pools {
		// Sorted by file name, like Python's sorted(os.listdir(...)); never
		// directory order, which differs between file systems.
		sort.Slice(pools[d], func(a, b int) bool { return pools[d][a].Name < pools[d][b].Name })
		if len(pools[d]) == 0 {
			return pools, fmt.Errorf("no FSDD recordings of digit %d for the %s pool", d, splitName(train))
		}
	}
	return pools, nil
}

func splitName(train bool) string {
	if train {
		return "train"
	}
	return "test"
}

// Pair walks labels in order and gives each sample the next recording of its
// digit from the pool, cycling through the pool.
func Pair(labels []uint8, pools [10][]*Recording) []*Recording {
	var next [10]int
	out := make([]*Recording, len(labels))
	for i, l := range labels {
		p := pools[l]
		out[i] = p[next[l]%len(p)]
		next[l]++
	}
	return out
}
