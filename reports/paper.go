package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/m2mix/m2mix/manifests"
)

// DefaultPaperResults is where the paper's numbers live, relative to the
// repository root.
const DefaultPaperResults = "manifests/paper-results.json"

// Paper holds the paper's Tables I-III as transcribed in
// manifests/paper-results.json. The file also says which configuration
// stands for which of the paper's rows, so that a new configuration needs a
// line of data, not code.
type Paper struct {
	Citation          string        `json:"citation"`
	Notes             []string      `json:"notes"`
	Tables            []MetricTable `json:"tables"`
	FeatureExtractors FeatureTable  `json:"feature_extractors"`
}

// MetricTable is one of the paper's results tables (I: AV-MNIST, II: MIMIC-III).
type MetricTable struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Dataset string `json:"dataset"`
	// PaperF1 is which F1 the paper's F1 column holds: "macro" or "micro".
	PaperF1 string `json:"paper_f1"`
	// F1Columns are the F1 columns shown, in order ("macro", "micro").
	F1Columns []string `json:"f1_columns"`
	// NotRunHint explains an empty table; shown when no configuration of
	// the table has a complete record.
	NotRunHint string `json:"not_run_hint,omitempty"`
	// PlotWFusion asks for a plot of w_f per epoch for the table's configurations.
	PlotWFusion bool       `json:"plot_w_fusion,omitempty"`
	Notes       []string   `json:"notes,omitempty"`
	Rows        []PaperRow `json:"rows"`
}

// PaperRow is one row of a paper table. Numbers are json.Number so that
// they print exactly as the paper prints them ("72.30", "0.6").
type PaperRow struct {
	Name string `json:"name"`
	Ref  string `json:"ref,omitempty"` // the paper's citation number of a baseline, e.g. "[10]"
	// Config is the configuration that reproduces this row; empty for a
	// row that is quoted only (MFAS, MVAE, MFM).
	Config    string      `json:"config,omitempty"`
	Note      string      `json:"note,omitempty"`
	AccMean   json.Number `json:"acc_mean"`
	AccStd    json.Number `json:"acc_std"`
	AccMax    json.Number `json:"acc_max"`
	F1Mean    json.Number `json:"f1_mean"`
	F1Std     json.Number `json:"f1_std"`
	TrainMean json.Number `json:"train_s_mean"`
	TrainStd  json.Number `json:"train_s_std"`
	TestMean  json.Number `json:"test_s_mean"`
	TestStd   json.Number `json:"test_s_std"`
	ParamsM   json.Number `json:"params_m"`
}

// FeatureTable is the paper's Table III: per-modality accuracies.
type FeatureTable struct {
	ID      string          `json:"id"`
	Title   string          `json:"title"`
	Columns []FeatureColumn `json:"columns"`
	Notes   []string        `json:"notes,omitempty"`
	Rows    []FeatureRow    `json:"rows"`
}

// FeatureColumn names a Table III column and says what it measures.
type FeatureColumn struct {
	Name string `json:"name"`
	What string `json:"what"`
}

// FeatureRow is one modality of Table III.
type FeatureRow struct {
	Modality   string        `json:"modality"`
	PaperLabel string        `json:"paper_label,omitempty"` // the label the paper's table prints, where it differs
	Cells      []FeatureCell `json:"cells"`
}

// FeatureCell is one Table III number and where ours comes from: the
// records of Config, their fusion accuracy when Head is empty, else their
// final accuracy of that head.
type FeatureCell struct {
	Paper  json.Number `json:"paper"`
	Config string      `json:"config"`
	Head   string      `json:"head,omitempty"`
}

// LoadPaper reads and checks the paper results file.
func LoadPaper(path string) (*Paper, error) {
	b, err := manifests.Read(path)
	if err != nil {
		return nil, fmt.Errorf("paper results: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var p Paper
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("paper results %s: %w", path, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("paper results %s: %w", path, err)
	}
	return &p, nil
}

func (p *Paper) validate() error {
	if len(p.Tables) == 0 {
		return fmt.Errorf("no tables")
	}
	ids := map[string]bool{p.FeatureExtractors.ID: true}
	for _, t := range p.Tables {
		if t.ID == "" || ids[t.ID] {
			return fmt.Errorf("table %q: empty or repeated id", t.ID)
		}
		ids[t.ID] = true
		if t.PaperF1 != "macro" && t.PaperF1 != "micro" {
			return fmt.Errorf("table %s: paper_f1 %q, want macro or micro", t.ID, t.PaperF1)
		}
		if len(t.F1Columns) == 0 {
			return fmt.Errorf("table %s: no f1_columns", t.ID)
		}
		for _, c := range t.F1Columns {
			if c != "macro" && c != "micro" {
				return fmt.Errorf("table %s: f1 column %q, want macro or micro", t.ID, c)
			}
		}
		if len(t.Rows) == 0 {
			return fmt.Errorf("table %s: no rows", t.ID)
		}
		for _, r := range t.Rows {
			if r.Name == "" {
				return fmt.Errorf("table %s: a row has no name", t.ID)
			}
			for _, n := range []json.Number{r.AccMean, r.AccStd, r.AccMax, r.F1Mean, r.F1Std, r.TrainMean, r.TrainStd, r.TestMean, r.TestStd, r.ParamsM} {
				if _, err := n.Float64(); n != "" && err != nil {
					return fmt.Errorf("table %s, row %s: %w", t.ID, r.Name, err)
				}
			}
		}
	}
	ft := p.FeatureExtractors
	if ft.ID == "" || len(ft.Columns) == 0 || len(ft.Rows) == 0 {
		return fmt.Errorf("feature_extractors: needs an id, columns and rows")
	}
	for _, r := range ft.Rows {
		if len(r.Cells) != len(ft.Columns) {
			return fmt.Errorf("feature_extractors, row %s: %d cells for %d columns", r.Modality, len(r.Cells), len(ft.Columns))
		}
		for _, c := range r.Cells {
			if _, err := c.Paper.Float64(); err != nil || c.Config == "" {
				return fmt.Errorf("feature_extractors, row %s: each cell needs a paper number and a config", r.Modality)
			}
		}
	}
	return nil
}

// configs returns every configuration the tables name, in table order,
// each once.
func (p *Paper) configs() []string {
	var out []string
	seen := map[string]bool{}
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, t := range p.Tables {
		for _, r := range t.Rows {
			add(r.Config)
		}
	}
	// Column by column: the uni-modal models, then the probes, ...
	for i := range p.FeatureExtractors.Columns {
		for _, r := range p.FeatureExtractors.Rows {
			add(r.Cells[i].Config)
		}
	}
	return out
}
