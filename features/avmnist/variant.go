package avmnist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/m2mix/m2mix/features/audio"
	"github.com/m2mix/m2mix/manifests"
)

// Variant is a set of generation choices that differ from the recipe as
// written, meant to match MultiBench's public AV-MNIST files (which the
// paper measured) better. The zero Variant is the recipe: the clean
// dataset, byte for byte as before variants existed.
type Variant struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Estimate says the parameters are calibrated guesses, not measured
	// from the public files; reports say so beside every number.
	Estimate    bool   `json:"estimate,omitempty"`
	Calibration string `json:"calibration,omitempty"` // how the parameters were chosen

	PCAK        int       `json:"pca_k,omitempty"`        // > 0: keep this many components instead of the 25 % rule
	NoiseWeight *float64  `json:"noise_weight,omitempty"` // nil: audio.NoiseGain (0.009)
	Pairing     string    `json:"pairing,omitempty"`      // "" or "aligned": audio row i is sample i's; "pool-race": see PoolRace
	Race        *PoolRace `json:"race,omitempty"`
}

// PoolRace is a seeded simulation of the reference generator's process
// pool: W workers take the spectrogram tasks in row order (train rows,
// then test rows, one list), each task takes BaseMS + PerSecondMS x the
// clip's seconds + JitterMS x U(0,1), and each result is appended to one
// list when it completes. Row j of the audio column then holds the task
// that completed j-th, while labels and images stay in MNIST order; the
// first train-rows results form the training split, so audio crosses the
// train/test boundary as in the reference's single list.
type PoolRace struct {
	Workers     int     `json:"workers"`
	BaseMS      float64 `json:"base_ms"`
	PerSecondMS float64 `json:"per_second_ms"`
	JitterMS    float64 `json:"jitter_ms"`
	Seed        uint64  `json:"seed"`
}

// Clean is the recipe as written.
const Clean = "clean"

// VariantDir is where named variants live (also embedded in the binary).
const VariantDir = "manifests/avmnist-variants"

// LoadVariant reads a named variant; "clean" (or "") is the recipe.
func LoadVariant(name string) (Variant, error) {
	if name == "" || name == Clean {
		return Variant{}, nil
	}
	path := VariantDir + "/" + name + ".json"
	b, err := manifests.Read(path)
	if err != nil {
		return Variant{}, fmt.Errorf("AV-MNIST variant %q: %w (known: clean and the files in %s)", name, err, VariantDir)
	}
	var v Variant
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return Variant{}, fmt.Errorf("read %s: %w", path, err)
	}
	if v.Name != name {
		return Variant{}, fmt.Errorf("read %s: name %q, want %q", path, v.Name, name)
	}
	return v, v.Validate()
}

// Validate checks the parameters.
func (v Variant) Validate() error {
	switch {
	case v.PCAK < 0 || v.PCAK > ImageSize:
		return fmt.Errorf("variant %s: pca_k %d out of 0..%d", v.Name, v.PCAK, ImageSize)
	case v.NoiseWeight != nil && (*v.NoiseWeight < 0 || *v.NoiseWeight > 1):
		return fmt.Errorf("variant %s: noise_weight %v out of [0, 1]", v.Name, *v.NoiseWeight)
	case v.Pairing != "" && v.Pairing != "aligned" && v.Pairing != "pool-race":
		return fmt.Errorf("variant %s: pairing %q: want aligned or pool-race", v.Name, v.Pairing)
	case v.Pairing == "pool-race" && v.Race == nil:
		return fmt.Errorf("variant %s: pool-race pairing needs race parameters", v.Name)
	case v.Race != nil && (v.Race.Workers < 1 || v.Race.BaseMS <= 0 || v.Race.PerSecondMS < 0 || v.Race.JitterMS < 0):
		return fmt.Errorf("variant %s: race needs workers >= 1, base_ms > 0, per_second_ms and jitter_ms >= 0", v.Name)
	case !v.IsClean() && (v.Name == "" || v.Name == Clean):
		return fmt.Errorf("a variant that changes the recipe needs a name other than %q", Clean)
	}
	return nil
}

// IsClean reports whether v is the recipe as written.
func (v Variant) IsClean() bool {
	return v.PCAK == 0 && v.NoiseWeight == nil && (v.Pairing == "" || v.Pairing == "aligned")
}

// noiseWeight is the ESC-50 mixing weight in force.
func (v Variant) noiseWeight() float64 {
	if v.NoiseWeight != nil {
		return *v.NoiseWeight
	}
	return audio.NoiseGain
}

// Params returns the generation parameters that change bytes (what the
// datasets' metadata and a pipeline key record).
func (v Variant) Params() map[string]any {
	m := map[string]any{"name": v.Name, "estimate": v.Estimate}
	if v.PCAK > 0 {
		m["pca_k"] = v.PCAK
	}
	m["noise_weight"] = v.noiseWeight()
	m["pairing"] = "aligned"
	if v.Pairing == "pool-race" {
		m["pairing"] = v.Pairing
		m["race"] = v.Race
	}
	return m
}

// RaceOrder simulates the pool for tasks of the given clip lengths (in
// samples at rate Hz) and returns the completion order: order[j] is the
// task whose result is appended j-th. Workers take the next task as soon
// as they are free (the lowest-numbered free worker first); results that
// complete at the same instant are appended in task order. The same seed
// and lengths give the same order.
func RaceOrder(lengths []int, rate int, r PoolRace) []int {
	rng := rand.New(rand.NewPCG(r.Seed, 0x706f6f6c2d726163)) // "pool-rac"
	free := make([]float64, r.Workers)                       // when each worker is next free
	done := make([]float64, len(lengths))
	for i, n := range lengths {
		w := 0
		for j := range free {
			if free[j] < free[w] {
				w = j
			}
		}
		d := r.BaseMS + r.PerSecondMS*float64(n)/float64(rate) + r.JitterMS*rng.Float64()
		free[w] += d
		done[i] = free[w]
	}
	order := make([]int, len(lengths))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return done[order[a]] < done[order[b]] })
	return order
}

// InPlace is the share of positions j with order[j] == j.
func InPlace(order []int) float64 {
	if len(order) == 0 {
		return 0
	}
	n := 0
	for j, t := range order {
		if t == j {
			n++
		}
	}
	return float64(n) / float64(len(order))
}

// race reorders the audio of both splits (and its provenance columns) as
// the pool would have appended it, in place (one row of scratch): row j
// takes task order[j]'s audio. lengths are each row's clip length. It
// returns the share of rows left in place.
func race(train, test *Split, lengths []int, r PoolRace) float64 {
	order := RaceOrder(lengths, SpeechRate, r)
	nTrain := train.Rows()
	at := func(i int) (*Split, int) {
		if i < nTrain {
			return train, i
		}
		return test, i - nTrain
	}
	audioOf := func(i int) []uint8 { s, k := at(i); return s.Audio[k*AudioSize : (k+1)*AudioSize] }
	move := func(dst, src int) {
		d, i := at(dst)
		s, k := at(src)
		copy(audioOf(dst), audioOf(src))
		d.FSDDFile[i], d.NoiseFile[i] = s.FSDDFile[k], s.NoiseFile[k]
	}
	done := make([]bool, len(order))
	tmp := make([]uint8, AudioSize)
	for start := range order {
		if done[start] {
			continue
		}
		// Follow the cycle start <- order[start] <- order[order[start]] ...
		s0, k0 := at(start)
		copy(tmp, audioOf(start))
		fsdd, noise := s0.FSDDFile[k0], s0.NoiseFile[k0]
		j := start
		for order[j] != start {
			move(j, order[j])
			done[j] = true
			j = order[j]
		}
		d, i := at(j)
		copy(audioOf(j), tmp)
		d.FSDDFile[i], d.NoiseFile[i] = fsdd, noise
		done[j] = true
	}
	return InPlace(order)
}
