package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestShippedProfiles(t *testing.T) {
	paper, err := LoadProfile("../manifests/profiles/paper.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paper.Seeds) != 10 || paper.Seeds[0] != 42 || paper.Seeds[9] != 51 {
		t.Errorf("paper seeds %v, want 42..51", paper.Seeds)
	}
	if o := paper.For("m2mixer_b"); o.MaxEpochs != nil || o.LimitTrain != nil || o.LimitEval != nil {
		t.Errorf("paper profile overrides %+v, want none", o)
	}
	quick, err := LoadProfile("../manifests/profiles/quick.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(quick.Seeds) != 1 {
		t.Errorf("quick seeds %v, want one", quick.Seeds)
	}
	// Both profiles must fill every table, so they list the same configurations.
	if strings.Join(quick.Configs, ",") != strings.Join(paper.Configs, ",") {
		t.Errorf("quick configs %v differ from paper configs %v", quick.Configs, paper.Configs)
	}
}

func TestProfileFor(t *testing.T) {
	p := loadString(t, `{"name":"t","seeds":[1],"configs":["a","b"],
		"overrides":{"max_epochs":2,"limit_train":2000},
		"per_config_overrides":{"b":{"limit_train":1000,"limit_eval":0}}}`)
	a, b := p.For("a"), p.For("b")
	if *a.MaxEpochs != 2 || *a.LimitTrain != 2000 || a.LimitEval != nil {
		t.Errorf("a: %v %v %v", *a.MaxEpochs, *a.LimitTrain, a.LimitEval)
	}
	if *b.MaxEpochs != 2 || *b.LimitTrain != 1000 || b.LimitEval == nil || *b.LimitEval != 0 {
		t.Errorf("b: %+v", b)
	}
	// For must not change the profile-wide values.
	if *p.Overrides.LimitTrain != 2000 {
		t.Error("For changed the profile's overrides")
	}
}

func TestProfileErrors(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"no name", `{"seeds":[1],"configs":["a"]}`, "no name"},
		{"no seeds", `{"name":"x","configs":["a"]}`, "no seeds"},
		{"duplicate seed", `{"name":"x","seeds":[1,2,1],"configs":["a"]}`, "seed 1 listed twice"},
		{"no configs", `{"name":"x","seeds":[1]}`, "no configs"},
		{"duplicate config", `{"name":"x","seeds":[1],"configs":["a","a"]}`, `config "a" listed twice`},
		{"negative limit", `{"name":"x","seeds":[1],"configs":["a"],"overrides":{"limit_train":-1}}`, "limit_train is -1"},
		{"override for unlisted config", `{"name":"x","seeds":[1],"configs":["a"],"per_config_overrides":{"b":{}}}`, `"b" is not in configs`},
		{"misspelt field", `{"name":"x","seeds":[1],"configs":["a"],"overrides":{"max_epoch":3}}`, "unknown field"},
		{"not JSON", `{"name":`, "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.json")
			if err := os.WriteFile(path, []byte(tt.json), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadProfile(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func loadString(t *testing.T, s string) *Profile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProfileSlurm: a profile's "slurm" object gives --executor slurm its
// default submission options; a misspelt option is refused.
func TestProfileSlurm(t *testing.T) {
	p := loadString(t, `{"name":"t","seeds":[1],"configs":["a"],
		"slurm":{"partition":"gpu","gpus":"1","time":"04:00:00","cpus_per_task":4,"mem":"16G","extra":["--qos=normal"]}}`)
	r := p.Slurm
	if r.Partition != "gpu" || r.GPUs != "1" || r.Time != "04:00:00" || r.CPUsPerTask != 4 || r.Mem != "16G" || len(r.Extra) != 1 {
		t.Fatalf("slurm options %+v", r)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "p.json")
	if err := os.WriteFile(path, []byte(`{"name":"t","seeds":[1],"configs":["a"],"slurm":{"partiton":"gpu"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadProfile(path); err == nil || !strings.Contains(err.Error(), "partiton") {
		t.Fatalf("a misspelt slurm option: %v", err)
	}
}

func TestProfileOnly(t *testing.T) {
	p := &Profile{Name: "p", Configs: []string{"mmixer", "m2mixer_s", "probe_image", "late_fusion"}}
	if err := p.Only([]string{"late_fusion", "mmixer"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"mmixer", "late_fusion"}; !slices.Equal(p.Configs, want) {
		t.Errorf("configs %v, want %v (the profile's order)", p.Configs, want)
	}
	if err := p.Only([]string{"m2mixer_b"}); err == nil || !strings.Contains(err.Error(), `no configuration "m2mixer_b"`) {
		t.Errorf("a name outside the profile: %v", err)
	}
}
