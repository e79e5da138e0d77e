package avmnist

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/m2mix/m2mix/features/audio"
	"github.com/m2mix/m2mix/features/pca"
	"github.com/m2mix/m2mix/features/spectrogram"
)

// Params are the choices a generation run makes.
type Params struct {
	Seed uint64
	// Limit, when > 0, uses only the first Limit MNIST rows of each split
	// (PCA is then fitted on those rows): for fast tests and previews.
	Limit int
	// Variant changes the recipe to match the public files; the zero value
	// is the recipe as written.
	Variant Variant
	// Progress, if set, is told about every sample generated.
	Progress interface{ Add(int64) }
}

// Split is one generated (or imported) split, row-aligned columns.
type Split struct {
	Label      []int64
	Image      []float32 // rows x 784
	Audio      []uint8   // rows x 12544, row-major 112 x 112
	MNISTIndex []int64
	FSDDFile   []string
	NoiseFile  []string
}

// Rows is the number of samples.
func (s *Split) Rows() int { return len(s.Label) }

// slice returns rows [lo, hi) sharing memory with s.
func (s *Split) slice(lo, hi int) *Split {
	return &Split{
		Label: s.Label[lo:hi], Image: s.Image[lo*ImageSize : hi*ImageSize],
		Audio: s.Audio[lo*AudioSize : hi*AudioSize], MNISTIndex: s.MNISTIndex[lo:hi],
		FSDDFile: s.FSDDFile[lo:hi], NoiseFile: s.NoiseFile[lo:hi],
	}
}

// AudioSize is the number of spectrogram values per sample.
const AudioSize = spectrogram.Size * spectrogram.Size

// PCAInfo reports one PCA fit.
type PCAInfo struct {
	Rows     int       `json:"rows"`
	K        int       `json:"k"`
	Kept     float64   `json:"variance_kept"` // cumulative explained-variance ratio of the k kept components
	Ratios10 []float64 `json:"first_ratios"`  // the first ten explained-variance ratios
}

// Result is a whole generation: the two MNIST splits and what was decided.
type Result struct {
	Train, Test           *Split
	PCATrain, PCATest     PCAInfo
	NoiseTrain, NoiseTest []string // the drawn noise clips, in assignment order
	SilentCells           int      // spectrogram cells of pure digital silence (see spectrogram.Render)
	// AudioInPlace is the share of rows whose audio is their own: 1 unless
	// a pool-race variant displaced them.
	AudioInPlace float64
}

// DrawNoise picks one clip per ESC-50 class with the seeded generator, then
// shuffles the 50 picks; the first 40 serve training, the last 10 test. The
// generator is PCG (math/rand/v2) and the draws use an explicit rejection
// rule, so the outcome depends only on the seed and the clip names.
func DrawNoise(clips []Clip, seed uint64) (train, test []*Clip, err error) {
	byClass := make([][]*Clip, NoiseClasses)
	for i := range clips {
		c := &clips[i]
		byClass[c.Class] = append(byClass[c.Class], c)
	}
	src := rand.NewPCG(seed, 0x41562d4d4e495354) // "AV-MNIST"
	picks := make([]*Clip, NoiseClasses)
	for c, cands := range byClass {
		if len(cands) == 0 {
			return nil, nil, fmt.Errorf("no ESC-50 clip of class %d", c)
		}
		sort.Slice(cands, func(a, b int) bool { return cands[a].Name < cands[b].Name })
		picks[c] = cands[uniform(src, len(cands))]
	}
	// Fisher-Yates, last position first.
	for i := len(picks) - 1; i > 0; i-- {
		j := uniform(src, i+1)
		picks[i], picks[j] = picks[j], picks[i]
	}
	return picks[:NoiseTrain], picks[NoiseTrain:], nil
}

// uniform returns an unbiased integer in [0, n) by rejection sampling.
func uniform(src *rand.PCG, n int) int {
	limit := math.MaxUint64 - math.MaxUint64%uint64(n)
	for {
		if v := src.Uint64(); v < limit {
			return int(v % uint64(n))
		}
	}
}

// Generate builds both splits from the inputs.
func Generate(in *Inputs, p Params) (*Result, error) {
	res := &Result{}
	noiseTrain, noiseTest, err := DrawNoise(in.Noise, p.Seed)
	if err != nil {
		return nil, err
	}
	for _, c := range noiseTrain {
		res.NoiseTrain = append(res.NoiseTrain, c.Name)
	}
	for _, c := range noiseTest {
		res.NoiseTest = append(res.NoiseTest, c.Name)
	}
	var silent atomic.Int64
	var lengths []int
	for _, sp := range []struct {
		train bool
		mn    MNIST
		noise []*Clip
		out   **Split
		info  *PCAInfo
	}{
		{true, in.Train, noiseTrain, &res.Train, &res.PCATrain},
		{false, in.Test, noiseTest, &res.Test, &res.PCATest},
	} {
		n := len(sp.mn.Labels)
		if p.Limit > 0 {
			n = min(n, p.Limit)
		}
		if len(sp.mn.Pixels) < n*ImageSize {
			return nil, fmt.Errorf("MNIST %s: %d pixels for %d images", splitName(sp.train), len(sp.mn.Pixels), n)
		}
		pools, err := Pools(in.Speech, sp.train)
		if err != nil {
			return nil, err
		}
		s, info, ls, err := generateSplit(sp.mn.Pixels[:n*ImageSize], sp.mn.Labels[:n], pools, sp.noise, p, &silent)
		if err != nil {
			return nil, fmt.Errorf("%s split: %w", splitName(sp.train), err)
		}
		*sp.out, *sp.info = s, info
		lengths = append(lengths, ls...)
	}
	res.SilentCells = int(silent.Load())
	res.AudioInPlace = 1
	if p.Variant.Pairing == "pool-race" {
		res.AudioInPlace = race(res.Train, res.Test, lengths, *p.Variant.Race)
	}
	return res, nil
}

// generateSplit makes one split's rows, and returns each row's clip length
// (speech samples) for the pool simulation.
func generateSplit(pix, labels []uint8, pools [10][]*Recording, noise []*Clip, p Params, silent *atomic.Int64) (*Split, PCAInfo, []int, error) {
	n := len(labels)
	m, err := pca.FitUint8(pix, n, ImageSize)
	if err != nil {
		return nil, PCAInfo{}, nil, err
	}
	ratios := m.Ratios()
	k, kept := pca.KeepFor(ratios, KeepVariance)
	if p.Variant.PCAK > 0 {
		k, kept = p.Variant.PCAK, 0
		for _, r := range ratios[:min(k, len(ratios))] {
			kept += r
		}
	}
	info := PCAInfo{Rows: n, K: k, Kept: kept, Ratios10: ratios[:min(10, len(ratios))]}
	img, err := m.Reconstruct(pix, n, k)
	if err != nil {
		return nil, info, nil, err
	}
	s := &Split{
		Label: make([]int64, n), Image: img, Audio: make([]uint8, n*AudioSize),
		MNISTIndex: make([]int64, n), FSDDFile: make([]string, n), NoiseFile: make([]string, n),
	}
	recs := Pair(labels, pools)
	lengths := make([]int, n)
	for i := range labels {
		lengths[i] = len(recs[i].Samples)
		s.Label[i] = int64(labels[i])
		s.MNISTIndex[i] = int64(i)
		s.FSDDFile[i] = recs[i].Name
		s.NoiseFile[i] = noise[i%len(noise)].Name
	}
	// Each worker takes the next block of samples and writes only its rows,
	// so the bytes are the same whatever the number of workers.
	gain := p.Variant.noiseWeight()
	prog := p.Progress
	const block = 64
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r spectrogram.Renderer
			for {
				lo := int(next.Add(block)) - block
				if lo >= n {
					return
				}
				hi := min(lo+block, n)
				for i := lo; i < hi; i++ {
					mix := audio.Mix(recs[i].Samples, noise[i%len(noise)].Samples, gain)
					z, err := r.Render(mix, s.Audio[i*AudioSize:(i+1)*AudioSize])
					if err != nil {
						once.Do(func() { firstErr = fmt.Errorf("sample %d (%s): %w", i, recs[i].Name, err) })
						return
					}
					if z > 0 {
						silent.Add(int64(z))
					}
				}
				if prog != nil {
					prog.Add(int64(hi - lo))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, info, nil, firstErr
	}
	return s, info, lengths, nil
}

// Params as metadata strings, shared by every dataset file of a run.
func (res *Result) meta(p Params, in *Inputs) map[string]string {
	m := map[string]string{
		"source":                  "raw",
		"seed":                    fmt.Sprint(p.Seed),
		"limit":                   fmt.Sprint(p.Limit),
		"pca_k_train":             fmt.Sprint(res.PCATrain.K),
		"pca_k_test":              fmt.Sprint(res.PCATest.K),
		"pca_variance_kept_train": fmt.Sprintf("%.6f", res.PCATrain.Kept),
		"pca_variance_kept_test":  fmt.Sprintf("%.6f", res.PCATest.Kept),
		"pca_keep_rule":           "k = first component whose cumulative explained-variance ratio exceeds 0.25; reconstruction scores[:, :k] @ components[:k], mean not added back; fitted separately on train and test",
		"speakers":                strings.Join(speakers[:], ","),
		"fsdd_takes":              "train 0-39, test 40-49; pools sorted by file name; pairing cycles per digit",
		"noise_draw":              "one clip per ESC-50 class (PCG seeded), shuffled; first 40 train, last 10 test, assigned cyclically by row",
		"noise_train":             strings.Join(res.NoiseTrain, ","),
		"noise_test":              strings.Join(res.NoiseTest, ","),
		"noise_gain":              fmt.Sprint(p.Variant.noiseWeight()),
		"resampler":               "polyphase Kaiser(beta=5) windowed sinc, 20*max(up,down)+1 taps, as scipy.signal.resample_poly; 44100->8000 Hz",
		"spectrogram":             "112 frames by the frame rule; symmetric Hann; 223-point DFT; PSD/(Fs*sum(w^2)), non-DC x2; 10log10; per-clip min-max; matplotlib Greys LUT (256) red channel; row 0 = highest frequency",
		"sample_rate":             fmt.Sprint(SpeechRate),
		"generator":               "github.com/m2mix/m2mix/features/avmnist",
	}
	for k, v := range in.Checksums {
		m[k] = v
	}
	// Only a variant adds keys: the recipe's files keep their bytes.
	if !p.Variant.IsClean() {
		b, _ := json.Marshal(p.Variant.Params())
		m["variant"] = p.Variant.Name
		m["variant_params"] = string(b)
		if p.Variant.PCAK > 0 {
			m["pca_keep_rule"] = fmt.Sprintf("k = %d fixed (variant %s); reconstruction scores[:, :k] @ components[:k], mean not added back; fitted separately on train and test", p.Variant.PCAK, p.Variant.Name)
		}
		if p.Variant.Pairing == "pool-race" {
			m["pairing"] = "pool-race: audio rows in the completion order of a simulated process pool (see variant_params); labels and images in MNIST order"
		}
	}
	return m
}
