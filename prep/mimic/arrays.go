// Package mimic holds MIMIC-III in the shape MultiBench's im.pk stores it,
// and reads that pickle.
package mimic

// Arrays is MIMIC-III as the four arrays of MultiBench's im.pk, flattened
// row-major. Both sources (the im.pk pickle and the raw PhysioNet tables)
// produce this; features/mimic turns it into the paper's datasets.
type Arrays struct {
	N          int
	TimeSeries []float64 // ep_tdata: N x 24 x 12, hour-major
	Static     []float64 // adm_features_all: N x 5
	Labels     []float64 // adm_labels_all: N x LabelCols (LabelCols >= 6)
	LabelCols  int
	ICD9       []float64 // y_icd9: N x 20 when known (raw tables), else nil
}
