package reports

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
)

const paperFile = "../manifests/paper-results.json"

// fakeRun describes a synthetic run; record turns it into a run record.
type fakeRun struct {
	config, dataset string
	seed            int64
	acc, macro      float64 // fractions
	train, test     float64
	heads           map[string]float64
	epochs          int
	wfStep          float64 // w_f grows by this per epoch from 1/3
	incomplete      bool
	variant         map[string]any // the AV-MNIST variant's parameters (nil: the recipe)
}

func (f fakeRun) record() runrecord.Record {
	dataset := f.dataset
	if dataset == "" {
		dataset = "avmnist"
	}
	epochs := f.epochs
	if epochs == 0 {
		epochs = 3
	}
	r := runrecord.Record{
		Config:   f.config,
		Model:    "model-" + f.config,
		Dataset:  dataset,
		Seed:     f.seed,
		Profile:  "quick",
		Device:   "cpu",
		Libtorch: "2.5.1",
		Inputs:   map[string]string{"data/" + dataset + "/train.arrow": "aa11", "data/" + dataset + "/test.arrow": "bb22"},
		Params:   877362,
	}
	if f.variant != nil {
		r.Settings = map[string]any{"data_variant": map[string]any{"name": f.variant["name"], "params": f.variant}}
	}
	heads := f.heads
	if heads == nil {
		heads = map[string]float64{"fusion": f.acc}
	}
	for e := range epochs {
		acc := map[string]float64{}
		for h, a := range heads {
			acc[h] = a * float64(e+1) / float64(epochs)
		}
		r.History = append(r.History, runrecord.Epoch{
			Epoch:     e,
			TrainLoss: 2 / float64(e+1),
			ValLoss:   2.2 / float64(e+1),
			HeadAcc:   acc,
			LR:        0.01,
			WFusion:   min(1, 1.0/3+f.wfStep*float64(e)),
			Seconds:   1,
		})
	}
	if !f.incomplete {
		r.Final = &runrecord.Metrics{
			Accuracy:     f.acc,
			MacroF1:      f.macro,
			MicroF1:      f.acc,
			HeadAccuracy: heads,
			TrainSeconds: f.train,
			TestSeconds:  f.test,
			BestEpoch:    epochs - 1,
			Epochs:       epochs,
		}
	}
	return r
}

// writeRuns writes the runs' records in the runs/<config>/<seed>/ layout.
func writeRuns(t testing.TB, runs string, fs ...fakeRun) {
	t.Helper()
	for _, f := range fs {
		r := f.record()
		path := filepath.Join(runs, r.Config, strconv.FormatInt(r.Seed, 10), runrecord.FileName)
		if err := artifact.WriteJSON(path, r); err != nil {
			t.Fatal(err)
		}
	}
}
