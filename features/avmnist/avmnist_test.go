package avmnist

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/prep/npy"
)

func TestParseNames(t *testing.T) {
	d, sp, take, err := ParseFSDDName("7_yweweler_43.wav")
	if err != nil || d != 7 || sp != "yweweler" || take != 43 {
		t.Fatalf("%d %s %d %v", d, sp, take, err)
	}
	for _, bad := range []string{"10_theo_1.wav", "7_theo.wav", "7_theo_1.mp3"} {
		if _, _, _, err := ParseFSDDName(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if c, err := ParseESCClass("4-102844-A-49.wav"); err != nil || c != 49 {
		t.Fatalf("%d %v", c, err)
	}
	for _, bad := range []string{"4-102844-A-50.wav", "x.wav"} {
		if _, err := ParseESCClass(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestPairingOrder checks the pools and the pairing walk by hand on a tiny
// set of recordings.
func TestPairingOrder(t *testing.T) {
	var recs []Recording
	for _, name := range []string{
		"1_theo_2.wav", "1_jackson_10.wav", "1_theo_10.wav", "1_george_0.wav", "1_nicolas_45.wav",
		"3_yweweler_0.wav", "3_jackson_39.wav", "3_theo_40.wav",
	} {
		d, sp, take, err := ParseFSDDName(name)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, Recording{Name: name, Digit: d, Speaker: sp, Take: take})
	}
	for d := 0; d < 10; d++ { // every digit needs a pool
		if d != 1 && d != 3 {
			recs = append(recs, Recording{Name: fmt.Sprintf("%d_theo_0.wav", d), Digit: d, Speaker: "theo"},
				Recording{Name: fmt.Sprintf("%d_theo_49.wav", d), Digit: d, Speaker: "theo", Take: 49})
		}
	}
	recs = append(recs, Recording{Name: "1_theo_41.wav", Digit: 1, Speaker: "theo", Take: 41})
	train, err := Pools(recs, true)
	if err != nil {
		t.Fatal(err)
	}
	names := func(rs []*Recording) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	// george is not one of the four speakers; takes >= 40 are test; file-name order.
	if got := names(train[1]); !reflect.DeepEqual(got, []string{"1_jackson_10.wav", "1_theo_10.wav", "1_theo_2.wav"}) {
		t.Fatalf("train pool of 1: %v", got)
	}
	labels := []uint8{1, 3, 1, 1, 3, 1, 3}
	want := []string{"1_jackson_10.wav", "3_jackson_39.wav", "1_theo_10.wav", "1_theo_2.wav", "3_yweweler_0.wav", "1_jackson_10.wav", "3_jackson_39.wav"}
	if got := names(Pair(labels, train)); !reflect.DeepEqual(got, want) {
		t.Fatalf("pairing\n got %v\nwant %v", got, want)
	}
	test, _ := Pools(recs, false)
	if got := names(test[1]); !reflect.DeepEqual(got, []string{"1_nicolas_45.wav", "1_theo_41.wav"}) {
		t.Fatalf("test pool of 1: %v", got)
	}
	if _, err := Pools(recs[:3], true); err == nil {
		t.Fatal("missing digits accepted")
	}
}

func noiseClips() []Clip {
	var clips []Clip
	rng := rand.New(rand.NewPCG(9, 9))
	for c := 0; c < NoiseClasses; c++ {
		for v := 0; v < 1+c%2; v++ { // odd classes have two candidates
			x := make([]float64, 4000)
			for i := range x {
				x[i] = rng.Float64()*2 - 1
			}
			clips = append(clips, Clip{Name: fmt.Sprintf("4-%d-%c-%d.wav", 1000+c, 'A'+v, c), Class: c, Samples: x})
		}
	}
	return clips
}

func TestDrawNoise(t *testing.T) {
	clips := noiseClips()
	tr, te, err := DrawNoise(clips, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr) != 40 || len(te) != 10 {
		t.Fatalf("%d/%d", len(tr), len(te))
	}
	seen := map[int]bool{}
	for _, c := range append(append([]*Clip{}, tr...), te...) {
		if seen[c.Class] {
			t.Fatalf("class %d drawn twice", c.Class)
		}
		seen[c.Class] = true
	}
	tr2, te2, _ := DrawNoise(clips, 42)
	if !reflect.DeepEqual(tr, tr2) || !reflect.DeepEqual(te, te2) {
		t.Fatal("same seed, different draw")
	}
	tr3, _, _ := DrawNoise(clips, 43)
	if reflect.DeepEqual(tr, tr3) {
		t.Fatal("different seed, same draw")
	}
	if _, _, err := DrawNoise(clips[:10], 1); err == nil {
		t.Fatal("missing classes accepted")
	}
}

// fixtureInputs is a small synthetic world: sparse images, tone "speech"
// for the four speakers, random noise for every class.
func fixtureInputs() *Inputs {
	rng := rand.New(rand.NewPCG(5, 6))
	mn := func(n int) MNIST {
		m := MNIST{Pixels: make([]uint8, n*ImageSize), Labels: make([]uint8, n)}
		for i := range m.Labels {
			m.Labels[i] = uint8(rng.IntN(10))
			// Ink only in a 10x10 square keeps PCA's eigenproblem small
			// (constant pixels are left out of it), so the test is fast.
			for p := 0; p < 40; p++ {
				m.Pixels[i*ImageSize+(9+rng.IntN(10))*ImageSide+9+rng.IntN(10)] = uint8(rng.IntN(256))
			}
		}
		return m
	}
	in := &Inputs{Train: mn(120), Test: mn(36), Noise: noiseClips(), Checksums: map[string]string{"source.test": "0"}}
	for d := 0; d < 10; d++ {
		for si, sp := range speakers {
			for _, take := range []int{0, 1, 40} {
				n := 1200 + 97*d + 31*si + take
				x := make([]float64, n)
				for i := range x {
					x[i] = 0.5 * math.Sin(2*math.Pi*float64(300+100*d)*float64(i)/SpeechRate)
				}
				in.Speech = append(in.Speech, Recording{Name: fmt.Sprintf("%d_%s_%d.wav", d, sp, take), Digit: d, Speaker: sp, Take: take, Samples: x})
			}
		}
	}
	return in
}

func generateTo(t *testing.T, in *Inputs, seed uint64, procs int) (*Output, string) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	p := Params{Seed: seed}
	res, err := Generate(in, p)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := res.Write(dir, p, in)
	if err != nil {
		t.Fatal(err)
	}
	return out, dir
}

func TestGenerationIsDeterministic(t *testing.T) {
	in := fixtureInputs()
	a, dirA := generateTo(t, in, 7, 1)
	b, _ := generateTo(t, in, 7, 4)
	for _, f := range []string{TrainFile, ValidationFile, TestFile, SheetFile} {
		if a.SHA256[f] != b.SHA256[f] {
			t.Errorf("%s differs between 1 and 4 cores", f)
		}
	}
	if a.Rows[TrainFile] != 110 || a.Rows[ValidationFile] != 10 || a.Rows[TestFile] != 36 {
		t.Fatalf("rows %v", a.Rows)
	}
	// Columns and types exactly as documented.
	tab, err := dataset.Read(filepath.Join(dirA, TrainFile))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range tab.Columns {
		kind := map[bool]string{true: "int64"}[c.Int64 != nil]
		switch {
		case c.Float32 != nil:
			kind = "float32"
		case c.Uint8 != nil:
			kind = "uint8"
		case c.String != nil:
			kind = "string"
		}
		got = append(got, fmt.Sprintf("%s:%s:%d", c.Name, kind, c.Width))
	}
	want := []string{"label:int64:0", "image:float32:784", "audio:uint8:12544", "mnist_index:int64:0", "fsdd_file:string:0", "noise_file:string:0"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("schema %v", got)
	}
	for _, k := range []string{"seed", "pca_k_train", "pca_variance_kept_test", "source", "split", "noise_train", "source.test"} {
		if tab.Meta[k] == "" {
			t.Errorf("metadata %q missing", k)
		}
	}
	if tab.Meta["source"] != "raw" || tab.Meta["seed"] != "7" || tab.Meta["split"] != "train" {
		t.Errorf("metadata %v", tab.Meta)
	}
	// The validation file continues the generator's row numbering.
	val, _ := dataset.Read(filepath.Join(dirA, ValidationFile))
	idx, _ := val.Column("mnist_index")
	if idx.Int64[0] != 110 {
		t.Errorf("validation starts at mnist_index %d", idx.Int64[0])
	}
}

func TestDifferentSeedChangesOnlyNoise(t *testing.T) {
	in := fixtureInputs()
	_, dirA := generateTo(t, in, 1, 2)
	_, dirB := generateTo(t, in, 2, 2)
	for _, f := range []string{TrainFile, TestFile} {
		ta, err := dataset.Read(filepath.Join(dirA, f))
		if err != nil {
			t.Fatal(err)
		}
		tb, _ := dataset.Read(filepath.Join(dirB, f))
		for i := range ta.Columns {
			ca, cb := ta.Columns[i], tb.Columns[i]
			same := reflect.DeepEqual(ca, cb)
			changes := ca.Name == "audio" || ca.Name == "noise_file"
			if same == changes {
				t.Errorf("%s: column %s: equal=%v across seeds", f, ca.Name, same)
			}
		}
	}
}

func TestImportNPY(t *testing.T) {
	dir := t.TempDir()
	const ntr, nte = 24, 5
	write := func(split string, n int, imgKind npy.Kind) {
		img := make([]float64, n*ImageSize)
		for i := range img {
			img[i] = float64(i%97) - 40.5
		}
		var err error
		if imgKind == npy.Float64 {
			err = npy.WriteFloat64(filepath.Join(dir, "image", split+"_data.npy"), []int{n, ImageSize}, img)
		} else {
			f := make([]float32, len(img))
			for i, v := range img {
				f[i] = float32(v)
			}
			err = npy.WriteFloat32(filepath.Join(dir, "image", split+"_data.npy"), []int{n, ImageSize}, f)
		}
		if err != nil {
			t.Fatal(err)
		}
		aud := make([]uint8, n*AudioSize)
		for i := range aud {
			aud[i] = uint8(i * 7 % 256)
		}
		npy.WriteUint8(filepath.Join(dir, "audio", split+"_data.npy"), []int{n, 112, 112}, aud)
		lab := make([]int64, n)
		for i := range lab {
			lab[i] = int64(i % 10)
		}
		npy.WriteInt64(filepath.Join(dir, split+"_labels.npy"), []int{n}, lab)
	}
	write("train", ntr, npy.Float64)
	write("test", nte, npy.Float32)
	data := t.TempDir()
	train, test, out, err := PrepNPY(data, dir)
	if err != nil {
		t.Fatal(err)
	}
	if train.Rows() != ntr || test.Rows() != nte || out.Rows[TrainFile] != 22 || out.Rows[ValidationFile] != 2 {
		t.Fatalf("rows %d %d %v", train.Rows(), test.Rows(), out.Rows)
	}
	tab, err := dataset.Read(filepath.Join(Dir(data), TestFile))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := tab.Column("image")
	aud, _ := tab.Column("audio")
	lab, _ := tab.Column("label")
	if img.Float32[100] != float32(100%97)-40.5 || aud.Uint8[AudioSize+3] != uint8((AudioSize+3)*7%256) || lab.Int64[4] != 4 {
		t.Fatalf("values not carried over")
	}
	if tab.Meta["source"] != "npy" || !strings.HasPrefix(tab.Meta["npy.audio/test_data.npy"], "") || len(tab.Meta["npy.audio/test_data.npy"]) != 64 {
		t.Fatalf("metadata %v", tab.Meta)
	}

	// Bad inputs name the file and the problem.
	npy.WriteFloat64(filepath.Join(dir, "test_labels.npy"), []int{nte}, []float64{0, 1, 2, 3.5, 4})
	if _, _, _, err := PrepNPY(data, dir); err == nil || !strings.Contains(err.Error(), "test_labels.npy") || !strings.Contains(err.Error(), "not a whole number") {
		t.Fatalf("fractional label: %v", err)
	}
	npy.WriteInt64(filepath.Join(dir, "test_labels.npy"), []int{nte}, []int64{0, 1, 2, 3, 12})
	if _, _, _, err := PrepNPY(data, dir); err == nil || !strings.Contains(err.Error(), "not a digit") {
		t.Fatalf("label 12: %v", err)
	}
	npy.WriteInt64(filepath.Join(dir, "test_labels.npy"), []int{nte + 1}, make([]int64, nte+1))
	if _, _, _, err := PrepNPY(data, dir); err == nil || !strings.Contains(err.Error(), "image/test_data.npy: shape [5 784]") {
		t.Fatalf("row mismatch: %v", err)
	}
	npy.WriteInt64(filepath.Join(dir, "test_labels.npy"), []int{nte}, make([]int64, nte))
	npy.WriteFloat32(filepath.Join(dir, "audio", "test_data.npy"), []int{nte, AudioSize}, make([]float32, nte*AudioSize))
	if _, _, _, err := PrepNPY(data, dir); err == nil || !strings.Contains(err.Error(), "want uint8") {
		t.Fatalf("float audio: %v", err)
	}
}

// TestRaceOrder: the pool simulation is deterministic for a seed, differs
// for another, is a permutation, and displaces no result by more than a few
// times the number of workers (a task can only be overtaken by tasks that
// started while it ran).
func TestRaceOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	lengths := make([]int, 5000)
	for i := range lengths {
		lengths[i] = 2000 + r.IntN(5000)
	}
	race := PoolRace{Workers: 23, BaseMS: 30, PerSecondMS: 10, JitterMS: 30, Seed: 1}
	a, b := RaceOrder(lengths, SpeechRate, race), RaceOrder(lengths, SpeechRate, race)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two orders")
	}
	race.Seed = 2
	if slices.Equal(a, RaceOrder(lengths, SpeechRate, race)) {
		t.Fatal("another seed gave the same order")
	}
	seen := make([]bool, len(a))
	worst := 0
	for j, task := range a {
		if seen[task] {
			t.Fatalf("task %d appended twice", task)
		}
		seen[task] = true
		worst = max(worst, j-task, task-j)
	}
	if worst == 0 || worst > 3*race.Workers {
		t.Errorf("largest displacement %d, want within (0, %d]", worst, 3*race.Workers)
	}
	if p := InPlace(a); p <= 0 || p >= 0.5 {
		t.Errorf("%.3f of the rows in place with 23 workers and 30 ms jitter", p)
	}
	// One worker runs the tasks in order.
	if one := RaceOrder(lengths, SpeechRate, PoolRace{Workers: 1, BaseMS: 30, JitterMS: 30}); InPlace(one) != 1 {
		t.Error("a single worker reordered the results")
	}
	t.Logf("23 workers: %.1f %% in place, largest displacement %d", 100*InPlace(a), worst)
}

// TestVariantGeneration: a pool-race variant keeps labels and images as
// the recipe makes them and moves whole audio rows (with their provenance)
// across the whole list, train and test; pca_k sets the images' rank; the
// recipe's metadata has no variant keys.
func TestVariantGeneration(t *testing.T) {
	in := fixtureInputs()
	clean, err := Generate(in, Params{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	zero := 0.0
	v := Variant{Name: "test-variant", PCAK: 2, NoiseWeight: &zero, Pairing: "pool-race",
		Race: &PoolRace{Workers: 12, BaseMS: 30, PerSecondMS: 10, JitterMS: 100, Seed: 4}}
	if err := v.Validate(); err != nil {
		t.Fatal(err)
	}
	quiet := Variant{Name: "quiet", NoiseWeight: &zero}
	aligned, err := Generate(in, Params{Seed: 3, Variant: quiet})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(in, Params{Seed: 3, Variant: v})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Generate(in, Params{Seed: 3, Variant: v})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Train.Audio, got.Train.Audio) || !slices.Equal(again.Test.Audio, got.Test.Audio) || !slices.Equal(again.Test.FSDDFile, got.Test.FSDDFile) {
		t.Fatal("the same variant and seed gave different audio bytes")
	}
	if got.PCATrain.K != 2 || got.PCATest.K != 2 || clean.PCATrain.K == 2 {
		t.Fatalf("pca k: variant %d/%d, recipe %d", got.PCATrain.K, got.PCATest.K, clean.PCATrain.K)
	}
	if !slices.Equal(got.Train.Label, clean.Train.Label) || !slices.Equal(got.Test.MNISTIndex, clean.Test.MNISTIndex) {
		t.Fatal("labels or MNIST rows moved")
	}
	// Every audio row of the variant is some aligned row's audio, with that
	// row's FSDD file; some rows moved, some across the split boundary.
	type key struct{ split, row int }
	where := map[string]key{}
	for si, s := range []*Split{aligned.Train, aligned.Test} {
		for i := 0; i < s.Rows(); i++ {
			where[string(s.Audio[i*AudioSize:(i+1)*AudioSize])+s.FSDDFile[i]] = key{si, i}
		}
	}
	moved, crossed := 0, 0
	for si, s := range []*Split{got.Train, got.Test} {
		for i := 0; i < s.Rows(); i++ {
			k, ok := where[string(s.Audio[i*AudioSize:(i+1)*AudioSize])+s.FSDDFile[i]]
			if !ok {
				t.Fatalf("split %d row %d: audio not any aligned row's", si, i)
			}
			if k != (key{si, i}) {
				moved++
			}
			if k.split != si {
				crossed++
			}
		}
	}
	if moved == 0 || crossed == 0 || got.AudioInPlace >= 1 {
		t.Errorf("%d rows moved, %d across the boundary, %.2f in place", moved, crossed, got.AudioInPlace)
	}
	if m := clean.meta(Params{Seed: 3}, in); m["variant"] != "" || m["variant_params"] != "" {
		t.Error("the recipe's metadata names a variant")
	}
	if m := got.meta(Params{Seed: 3, Variant: v}, in); m["variant"] != "test-variant" || !strings.Contains(m["variant_params"], `"pairing":"pool-race"`) {
		t.Errorf("variant metadata %q %q", m["variant"], m["variant_params"])
	}
}

// TestImportNPYRefusesBadImages: NaN or Inf in the public images, or an
// image file whose rows disagree with the labels file, is an error naming
// the file (and the other file it disagrees with), and nothing is written.
func TestImportNPYRefusesBadImages(t *testing.T) {
	for _, c := range []struct {
		name  string
		value float32
		rows  int
		want  []string
	}{
		{"NaN", float32(math.NaN()), 4, []string{"image/train_data.npy: image 2, pixel 5 is NaN"}},
		{"Inf", float32(math.Inf(-1)), 4, []string{"image/train_data.npy: image 2, pixel 5 is -Inf"}},
		{"rows", 0, 3, []string{"image/train_data.npy: shape [3 784]", "train_labels.npy has 4 labels"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, split := range []string{"train", "test"} {
				img := make([]float32, c.rows*ImageSize)
				if split == "train" && c.rows == 4 {
					img[2*ImageSize+5] = c.value
				}
				n := 4
				if split == "test" || c.rows == 4 {
					if err := npy.WriteFloat32(filepath.Join(dir, "image", split+"_data.npy"), []int{n, ImageSize}, make([]float32, n*ImageSize)); err != nil {
						t.Fatal(err)
					}
				}
				if split == "train" {
					if err := npy.WriteFloat32(filepath.Join(dir, "image", split+"_data.npy"), []int{c.rows, ImageSize}, img); err != nil {
						t.Fatal(err)
					}
				}
				if err := npy.WriteUint8(filepath.Join(dir, "audio", split+"_data.npy"), []int{n, 112, 112}, make([]uint8, n*AudioSize)); err != nil {
					t.Fatal(err)
				}
				if err := npy.WriteInt64(filepath.Join(dir, split+"_labels.npy"), []int{n}, []int64{1, 2, 3, 4}); err != nil {
					t.Fatal(err)
				}
			}
			data := t.TempDir()
			_, _, _, err := PrepNPY(data, dir)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("want an error containing %q, got %v", w, err)
				}
			}
			if _, err := os.Stat(Dir(data)); err == nil {
				t.Error("a refused import wrote its folder")
			}
		})
	}
}
