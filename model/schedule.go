package model

import "math"

// Plateau is torch.optim.lr_scheduler.ReduceLROnPlateau in mode "min" with
// a relative threshold, cooldown 0 and min_lr 0, step for step: the learning
// rate is multiplied by Factor once more than Patience epochs in a row fail
// to improve on the best loss by the relative Threshold.
type Plateau struct {
	Patience  int     `json:"patience"`
	Factor    float64 `json:"factor"`
	Threshold float64 `json:"threshold"`
	Best      float64 `json:"best"`
	BadEpochs int     `json:"bad_epochs"`
}

// noBest stands for PyTorch's initial best of +inf: any finite loss beats
// it, and unlike +Inf it survives a JSON round trip (checkpoints store it).
const noBest = math.MaxFloat64

// NewPlateau starts a scheduler with no best loss yet.
func NewPlateau(patience int, factor, threshold float64) *Plateau {
	return &Plateau{Patience: patience, Factor: factor, Threshold: threshold, Best: noBest}
}

// Step takes the epoch's validation loss and the current learning rate and
// returns the learning rate for the next epoch.
func (p *Plateau) Step(loss, lr float64) float64 {
	if loss < p.Best*(1-p.Threshold) { // PyTorch's is_better for rel mode, min
		p.Best = loss
		p.BadEpochs = 0
	} else {
		p.BadEpochs++
	}
	if p.BadEpochs > p.Patience {
		p.BadEpochs = 0
		next := lr * p.Factor
		if lr-next > 1e-8 { // PyTorch skips changes smaller than its eps
			return next
		}
	}
	return lr
}

// EarlyStop stops training after Patience epochs without a strictly lower
// validation score (PyTorch Lightning's EarlyStopping, min_delta 0); with
// Patience 0 it only keeps the best score (a fixed number of epochs).
type EarlyStop struct {
	Patience int     `json:"patience"`
	Best     float64 `json:"best"`
	Wait     int     `json:"wait"`
}

// NewEarlyStop starts with no best loss yet.
func NewEarlyStop(patience int) *EarlyStop { return &EarlyStop{Patience: patience, Best: noBest} }

// Step records an epoch's loss; it reports whether the loss is a new best
// and whether training should stop.
func (e *EarlyStop) Step(loss float64) (improved, stop bool) {
	if loss < e.Best {
		e.Best, e.Wait = loss, 0
		return true, false
	}
	e.Wait++
	return false, e.Stopped()
}

// Stopped reports whether Patience epochs have passed without a new best.
func (e *EarlyStop) Stopped() bool { return e.Patience > 0 && e.Wait >= e.Patience }
