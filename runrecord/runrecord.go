// Package runrecord defines the record that one training run leaves behind.
//
// Training (package model) writes it; reports read it. It lives on its own so
// that reports can be regenerated on a machine without libtorch: this package
// imports nothing but the standard library.
package runrecord

// FileName is the record's name inside a run folder runs/<config>/<seed>/.
const FileName = "record.json"

// Record is everything a report needs about one (configuration, seed) run.
type Record struct {
	Config   string `json:"config"`  // configuration name, e.g. "m2mixer_m"
	Model    string `json:"model"`   // paper row name, e.g. "M2-Mixer_M"
	Dataset  string `json:"dataset"` // "avmnist" or "mimic"
	Seed     int64  `json:"seed"`
	Profile  string `json:"profile,omitempty"`
	Device   string `json:"device"`   // "cpu", "cuda:0"
	Libtorch string `json:"libtorch"` // libtorch version string
	// Threads is libtorch's intra-op thread count: on a CPU, results are
	// byte-identical for the same count, and may differ in the last bits
	// (then more, through training) for another.
	Threads  int               `json:"threads,omitempty"`
	Inputs   map[string]string `json:"inputs"`   // dataset file -> sha256
	Settings map[string]any    `json:"settings"` // the resolved configuration and run limits
	Params   int64             `json:"trainable_params"`
	History  []Epoch           `json:"history"`
	Final    *Metrics          `json:"final,omitempty"` // nil until the run is complete
}

// Epoch is one line of the learning curve.
type Epoch struct {
	Epoch     int                `json:"epoch"` // 0-based
	TrainLoss float64            `json:"train_loss"`
	ValLoss   float64            `json:"val_loss"` // the (weighted) loss that drives the scheduler
	HeadLoss  map[string]float64 `json:"val_head_loss,omitempty"`
	HeadAcc   map[string]float64 `json:"val_head_acc"` // head name ("fusion", "image", ...) -> accuracy
	LR        float64            `json:"lr"`           // learning rate used during this epoch
	WFusion   float64            `json:"w_fusion"`     // w_f used during this epoch
	Seconds   float64            `json:"seconds"`

	// Gradient Blending records one entry per round, at the round's last
	// blended epoch: the heads' loss weights the round estimated and
	// trained with, and the validation loss after each head fine-tune
	// epoch (the entry's validation figures are the last one's).
	BlendWeights    map[string]float64 `json:"blend_weights,omitempty"`
	FinetuneValLoss []float64          `json:"finetune_val_loss,omitempty"`
}

// Metrics are the final test results (on the lowest-validation-loss weights).
type Metrics struct {
	Accuracy     float64            `json:"accuracy"` // fusion head (or the only head)
	MacroF1      float64            `json:"macro_f1"`
	MicroF1      float64            `json:"micro_f1"`
	HeadAccuracy map[string]float64 `json:"head_accuracy"`
	TrainSeconds float64            `json:"train_seconds"`
	TestSeconds  float64            `json:"test_seconds"`
	BestEpoch    int                `json:"best_epoch"`
	Epochs       int                `json:"epochs"` // epochs run
	StoppedEarly bool               `json:"stopped_early"`
	// Diverged says why training stopped on a non-finite loss; the test then
	// used the best weights before it. Empty for a run that stayed finite.
	Diverged string `json:"diverged,omitempty"`
}
