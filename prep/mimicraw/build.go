// Package mimicraw builds MIMIC-III's im.pk arrays from the raw PhysioNet tables.
package mimicraw

import (
	"errors"

	"github.com/m2mix/m2mix/prep/mimic"
)

// Options tune a build from the raw tables.
type Options struct {
	Workers int // parallel workers; 0 means all cores
}

// Build reads the MIMIC-III v1.4 tables in dir and returns the arrays, rows
// in ascending HADM_ID, plus metadata describing the choices made.
// Placeholder until the raw-tables issue lands.
func Build(dir string, opts Options) (*mimic.Arrays, map[string]string, error) {
	return nil, nil, errors.New("mimic --raw: not implemented yet")
}
