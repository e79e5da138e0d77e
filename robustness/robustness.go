// Package robustness defines the test-time corruptions that measure how a
// trained model copes with a missing or degraded modality, the per-run
// result file they produce, and MultiBench's robustness figures computed
// from the accuracy curves.
//
// It imports nothing but the standard library: evaluation (package model)
// applies the corruptions to host-side test rows, reports read the result
// files without libtorch.
//
// Every corruption is a pure function of its parameters, the row's index in
// the test split and a seed, so a result does not depend on the batch size
// or on how many models are evaluated at once.
package robustness

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
)

// Dir is the folder of a dataset's robustness inputs inside a data folder:
// the cached training statistics and the re-rendered test audio.
func Dir(data, dataset string) string { return filepath.Join(data, "robustness", dataset) }

// NoiseWeightFile names the re-rendered test audio of one ESC-50 weight.
func NoiseWeightFile(w float64) string {
	return "noise-weight-" + strconv.FormatFloat(w, 'g', -1, 64) + ".arrow"
}

// NoiseWeightManifest lists the sha256 of the re-rendered files in Dir:
// written last, it commits them as a set.
const NoiseWeightManifest = "noise-weight-manifest.json"

// FileName is the result file's name inside a run folder, beside the run's
// record.json.
const FileName = "robustness.json"

// Kinds of corruption.
const (
	Clean       = "clean"        // the test rows as they are
	Missing     = "missing"      // the modality replaced by a fill (Fill: zeros or the training mean)
	Gaussian    = "gaussian"     // additive N(0, (Level * training std)^2) noise on every value
	NoiseWeight = "noise_weight" // AV-MNIST audio re-rendered with the ESC-50 noise mixed in at weight Level
	DropSteps   = "drop_steps"   // a time-series modality: each time step replaced by the training mean with probability Level
)

// Fills of a missing modality.
const (
	FillZeros = "zeros"
	FillMean  = "mean"
)

// Levels are the noise levels of the Gaussian and time-step corruptions:
// 0.1, 0.2, ..., 1.0 (fractions of the training std, or probabilities). With
// the clean accuracy at level 0 the curve has MultiBench's 11 points.
func Levels() []float64 {
	out := make([]float64, 10)
	for i := range out {
		out[i] = float64(i+1) / 10
	}
	return out
}

// ModalityStats are one modality's training-split statistics: the mean of
// each value position over the rows (the fill of a missing modality, and of
// a dropped time step) and the standard deviation of all values together
// (the unit of the Gaussian noise levels).
type ModalityStats struct {
	Shape []int64   `json:"shape"` // one row's shape
	Mean  []float64 `json:"mean"`  // per value position, len = product of Shape
	Std   float64   `json:"std"`   // population std over every value of every row
}

// TrainStats are the statistics of every modality of one dataset's
// training split, and the file they came from.
type TrainStats struct {
	Dataset     string                   `json:"dataset"`
	TrainFile   string                   `json:"train_file"`
	TrainSHA256 string                   `json:"train_sha256"`
	Rows        int                      `json:"rows"`
	Modalities  map[string]ModalityStats `json:"modalities"`
}

// StatsFile is the name of the cached training statistics inside a
// dataset's robustness folder.
const StatsFile = "train-stats.json"

// ComputeStats returns a modality's statistics from its rows (row-major,
// rows x width), as stored: float32, or uint8 bytes (which the networks read
// unnormalised). Sums run in float64, row by row, so the result depends only
// on the values.
func ComputeStats[T float32 | uint8](values []T, rows int, shape []int64) (ModalityStats, error) {
	width := 1
	for _, d := range shape {
		width *= int(d)
	}
	if rows <= 0 || len(values) != rows*width {
		return ModalityStats{}, fmt.Errorf("training statistics: %d values for %d rows of %d", len(values), rows, width)
	}
	mean := make([]float64, width)
	total := 0.0
	for r := 0; r < rows; r++ {
		row := values[r*width : (r+1)*width]
		for j, v := range row {
			mean[j] += float64(v)
			total += float64(v)
		}
	}
	n := float64(rows)
	for j := range mean {
		mean[j] /= n
	}
	all := total / (n * float64(width))
	ss := 0.0
	for _, v := range values {
		d := float64(v) - all
		ss += d * d
	}
	return ModalityStats{Shape: slices.Clone(shape), Mean: mean, Std: math.Sqrt(ss / (n * float64(width)))}, nil
}

// Corruption is one test-time condition applied to one modality.
type Corruption struct {
	Kind     string  `json:"kind"`
	Modality string  `json:"modality,omitempty"`
	Fill     string  `json:"fill,omitempty"`  // Missing: zeros or mean
	Level    float64 `json:"level,omitempty"` // Gaussian: fraction of the std; DropSteps: probability; NoiseWeight: the mixing weight
}

// Name is a short label, e.g. "gaussian image 0.3".
func (c Corruption) Name() string {
	switch c.Kind {
	case Clean:
		return Clean
	case Missing:
		return fmt.Sprintf("%s %s (%s)", c.Kind, c.Modality, c.Fill)
	}
	return fmt.Sprintf("%s %s %g", c.Kind, c.Modality, c.Level)
}

// rowRNG is the generator of one (corruption, row): seeded by the seed, the
// corruption's identity and the row index alone.
func (c Corruption) rowRNG(seed uint64, row int) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(c.Kind + "\x00" + c.Modality + "\x00"))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], math.Float64bits(c.Level))
	h.Write(b[:])
	return rand.New(rand.NewPCG(seed^h.Sum64(), uint64(row)))
}

// Apply corrupts rows [first, first+n) of the modality in place: x holds n
// rows of st's shape, row i being row first+i of the test split. Clean and
// NoiseWeight (whose rows come re-rendered from elsewhere) leave x as it is.
func (c Corruption) Apply(x []float32, first, n int, st ModalityStats, seed uint64) error {
	width := len(st.Mean)
	if width == 0 || len(x) != n*width {
		return fmt.Errorf("%s: %d values for %d rows of %d", c.Name(), len(x), n, width)
	}
	switch c.Kind {
	case Clean, NoiseWeight:
	case Missing:
		switch c.Fill {
		case FillZeros:
			clear(x)
		case FillMean:
			for i := 0; i < n; i++ {
				row := x[i*width : (i+1)*width]
				for j := range row {
					row[j] = float32(st.Mean[j])
				}
			}
		default:
			return fmt.Errorf("%s: fill %q, want %s or %s", c.Name(), c.Fill, FillZeros, FillMean)
		}
	case Gaussian:
		if c.Level < 0 {
			return fmt.Errorf("%s: negative level", c.Name())
		}
		sd := c.Level * st.Std
		for i := 0; i < n; i++ {
			rng := c.rowRNG(seed, first+i)
			row := x[i*width : (i+1)*width]
			for j := range row {
				row[j] += float32(sd * rng.NormFloat64())
			}
		}
	case DropSteps:
		if len(st.Shape) != 2 {
			return fmt.Errorf("%s: needs a (steps, features) modality, not shape %v", c.Name(), st.Shape)
		}
		if c.Level < 0 || c.Level > 1 {
			return fmt.Errorf("%s: probability out of [0, 1]", c.Name())
		}
		steps, feat := int(st.Shape[0]), int(st.Shape[1])
		for i := 0; i < n; i++ {
			rng := c.rowRNG(seed, first+i)
			row := x[i*width : (i+1)*width]
			for t := 0; t < steps; t++ {
				if rng.Float64() < c.Level {
					for f := 0; f < feat; f++ {
						row[t*feat+f] = float32(st.Mean[t*feat+f])
					}
				}
			}
		}
	default:
		return fmt.Errorf("corruption kind %q: want %s, %s, %s, %s or %s", c.Kind, Clean, Missing, Gaussian, NoiseWeight, DropSteps)
	}
	return nil
}

// Plan lists the corruptions of a dataset's modalities: missing (both
// fills), Gaussian noise at every level, and time steps dropped at every
// level for a time-series modality (shape (steps, features) with more than
// one step). noiseWeights adds one NoiseWeight condition per weight for
// the modality named audio (the weights whose re-rendered test rows exist).
func Plan(modalities []string, shapes map[string][]int64, noiseWeights []float64) []Corruption {
	out := []Corruption{{Kind: Clean}}
	for _, m := range modalities {
		out = append(out, Corruption{Kind: Missing, Modality: m, Fill: FillZeros}, Corruption{Kind: Missing, Modality: m, Fill: FillMean})
	}
	for _, m := range modalities {
		for _, l := range Levels() {
			out = append(out, Corruption{Kind: Gaussian, Modality: m, Level: l})
		}
		if sh := shapes[m]; len(sh) == 2 && sh[0] > 1 {
			for _, l := range Levels() {
				out = append(out, Corruption{Kind: DropSteps, Modality: m, Level: l})
			}
		}
		if m == "audio" {
			for _, w := range noiseWeights {
				out = append(out, Corruption{Kind: NoiseWeight, Modality: m, Level: w})
			}
		}
	}
	return out
}

// Condition is one corruption's outcome: each head's test accuracy (a
// fraction).
type Condition struct {
	Corruption
	Accuracy map[string]float64 `json:"accuracy"`
}

// Result is what one run's robustness evaluation leaves in its folder.
type Result struct {
	Config  string `json:"config"`
	Model   string `json:"model"`
	Dataset string `json:"dataset"`
	Kind    string `json:"kind"` // the configuration's kind: multimodal, unimodal, probe
	Seed    int64  `json:"seed"`
	Variant string `json:"variant,omitempty"`
	// Head is the head the tables and curves show (the configuration's
	// first: fusion for a multimodal model).
	Head string `json:"head"`
	// Modalities the model reads; corruptions of others cannot change it.
	Modalities []string `json:"modalities"`
	Rows       int      `json:"rows"` // test rows evaluated (the first Rows of the split)
	NoiseSeed  uint64   `json:"noise_seed"`
	// Inputs are the sha256 of what the evaluation read: the checkpoint,
	// the test split, the training statistics, re-rendered test rows.
	Inputs     map[string]string `json:"inputs"`
	Conditions []Condition       `json:"conditions"`
}

// Find returns the accuracy of the result's head under corruption c.
func (r *Result) Find(c Corruption) (float64, bool) {
	for _, cond := range r.Conditions {
		if cond.Kind == c.Kind && cond.Modality == c.Modality && cond.Fill == c.Fill && sameLevel(cond.Level, c.Level) {
			v, ok := cond.Accuracy[r.Head]
			return v, ok
		}
	}
	return 0, false
}

func sameLevel(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Curve returns the result's accuracy at level 0 (clean) and at each of
// levels for corruptions of kind on modality; ok is false when a point is
// missing.
func (r *Result) Curve(kind, modality string, levels []float64) ([]float64, bool) {
	clean, ok := r.Find(Corruption{Kind: Clean})
	if !ok {
		return nil, false
	}
	out := []float64{clean}
	for _, l := range levels {
		v, ok := r.Find(Corruption{Kind: kind, Modality: modality, Level: l})
		if !ok {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// RelativeRobustness is MultiBench's relative robustness of a curve of
// accuracies at equally spaced noise levels from 0 to 1: the area under the
// curve by the trapezoid rule (MultiBench, Liang et al. 2021, §3; before
// their min-max normalisation across methods).
func RelativeRobustness(curve []float64) float64 {
	if len(curve) < 2 {
		return math.NaN()
	}
	step := 1 / float64(len(curve)-1)
	area := 0.0
	for i := 0; i+1 < len(curve); i++ {
		area += (curve[i] + curve[i+1]) * step / 2
	}
	return area
}

// EffectiveRobustness is MultiBench's effective robustness of a curve
// against a reference curve (theirs: late fusion's) at the same levels:
// the summed accuracy above the reference shifted to start at the curve's
// clean accuracy, so it measures how much less the accuracy drops, not how
// high it starts (before MultiBench's normalisation across methods).
func EffectiveRobustness(curve, reference []float64) float64 {
	if len(curve) == 0 || len(curve) != len(reference) {
		return math.NaN()
	}
	shift := curve[0] - reference[0]
	sum := 0.0
	for i := range curve {
		sum += curve[i] - (reference[i] + shift)
	}
	return sum
}
