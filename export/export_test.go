package export

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// TestRenameKnownNames: names from docs/pytorch-names.md's table (ours →
// the reference's, as the reference's models print their state_dict()).
func TestRenameKnownNames(t *testing.T) {
	for _, c := range []struct{ config, ours, want string }{
		{"m2mixer_m", "img.emb.weight", "image_mixer.to_patch_embedding.0.weight"},
		{"m2mixer_m", "aud.emb.bias", "audio_mixer.to_patch_embedding.0.bias"},
		{"m2mixer_m", "img.blocks.0.ln1.weight", "image_mixer.mixer_blocks.0.token_mix.0.weight"},
		{"m2mixer_m", "aud.blocks.1.tok.3.bias", "audio_mixer.mixer_blocks.1.token_mix.2.net.3.bias"},
		{"m2mixer_m", "img.blocks.1.tok.0.weight", "image_mixer.mixer_blocks.1.token_mix.2.net.0.weight"},
		{"m2mixer_m", "img.blocks.0.ln2.bias", "image_mixer.mixer_blocks.0.channel_mix.0.bias"},
		{"m2mixer_m", "aud.blocks.0.ch.0.weight", "audio_mixer.mixer_blocks.0.channel_mix.1.net.0.weight"},
		{"m2mixer_m", "aud.blocks.0.ch.3.bias", "audio_mixer.mixer_blocks.0.channel_mix.1.net.3.bias"},
		{"m2mixer_m", "img.ln.weight", "image_mixer.layer_norm.weight"},
		{"m2mixer_s", "fus.0.tok.0.weight", "fusion_mixer.mixer_blocks.0.token_mix.2.net.0.weight"},
		{"m2mixer_s", "fus.1.bias", "fusion_mixer.layer_norm.bias"},
		{"m2mixer_b", "fus.1.ln2.weight", "fusion_mixer.mixer_blocks.1.channel_mix.0.weight"},
		{"m2mixer_b", "fus.2.weight", "fusion_mixer.layer_norm.weight"},
		{"m2mixer_b", "img.blocks.3.ch.3.weight", "image_mixer.mixer_blocks.3.channel_mix.1.net.3.weight"},
		{"m2mixer_s", "hf.weight", "classifier_fusion.classifer.weight"},
		{"m2mixer_s", "hi.bias", "classifier_image.bias"},
		{"m2mixer_s", "ha.weight", "classifier_audio.weight"},
		{"mmixer", "hf.bias", "classifier.classifer.bias"},
		{"mmixer", "fus.0.ch.0.bias", "fusion_mixer.mixer_blocks.0.channel_mix.1.net.0.bias"},
		{"unimodal_image", "img.blocks.0.tok.0.bias", "model.mixer_blocks.0.token_mix.2.net.0.bias"},
		{"unimodal_image", "hi.weight", "classifier.weight"},
		{"unimodal_audio", "aud.ln.bias", "model.layer_norm.bias"},
		{"probe_audio", "ha.bias", "classifier.bias"},
		{"probe_image", "img.emb.weight", "model.to_patch_embedding.0.weight"},
		{"m2mixer_h", "static.0.weight", "static_extractor.module_list.0.weight"},
		{"m2mixer_h", "static.6.bias", "static_extractor.module_list.6.bias"},
		{"m2mixer_h", "time.emb.weight", "time_mixer.proj.weight"},
		{"m2mixer_h", "time.blocks.0.tok.3.weight", "time_mixer.mixer_blocks.0.token_mix.2.net.3.weight"},
		{"m2mixer_h", "time.ln.weight", "time_mixer.layer_norm.weight"},
		{"m2mixer_h", "fus.1.weight", "fusion_mixer.layer_norm.weight"},
		{"m2mixer_lc", "hf.weight", "classifier_fusion.classifer.weight"},
		{"m2mixer_lc", "hs.bias", "classifier_static.bias"},
		{"m2mixer_lc", "ht.weight", "classifier_time.weight"},
	} {
		a, err := ReferenceArchitecture(c.config)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Rename([]string{c.ours})
		if err != nil {
			t.Errorf("%s %s: %v", c.config, c.ours, err)
			continue
		}
		if got[c.ours] != c.want {
			t.Errorf("%s %s: %q, want %q", c.config, c.ours, got[c.ours], c.want)
		}
	}
}

// TestRenameRefuses: names a class has no place for, and configurations
// without a reference class.
func TestRenameRefuses(t *testing.T) {
	for _, c := range []struct{ config, ours, want string }{
		{"mmixer", "hi.weight", `"hi.weight" has no name in AVMnistMixer's table`}, // MMixer has no image head
		{"m2mixer_h", "img.emb.weight", "no name in MimicMixerMultiLoss's table"},
		{"m2mixer_s", "img.blocks.0.tok.1.weight", "no name"}, // GELU: no parameters
		{"unimodal_image", "aud.emb.weight", "no name in AVMnistImageMixer's table"},
		{"m2mixer_s", "adam.exp_avg.hf.weight", "no name"},
	} {
		a, err := ReferenceArchitecture(c.config)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Rename([]string{c.ours}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want one containing %q", c.config, c.ours, err, c.want)
		}
	}
	_, err := ReferenceArchitecture("lenet_late_fusion")
	if err == nil || !strings.Contains(err.Error(), `"lenet_late_fusion"`) || !strings.Contains(err.Error(), "--names m2mix") {
		t.Errorf("a configuration without a reference class: %v", err)
	}
}

// f32 is the little-endian bytes of v.
func f32(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// fakeRun writes a finished run folder of config with the given tensors
// (a best.safetensors as training writes it, with its checksum).
func fakeRun(t *testing.T, config string, tensors map[string]torch.RawTensor, final bool) string {
	t.Helper()
	run := filepath.Join(t.TempDir(), "runs", config, "7")
	if err := torch.WriteSafetensors(filepath.Join(run, bestFile), tensors, map[string]string{"config": config}); err != nil {
		t.Fatal(err)
	}
	rec := runrecord.Record{Config: config, Seed: 7}
	if final {
		rec.Final = &runrecord.Metrics{}
	}
	if err := artifact.WriteJSON(filepath.Join(run, runrecord.FileName), rec); err != nil {
		t.Fatal(err)
	}
	return run
}

func mimicTensors() map[string]torch.RawTensor {
	return map[string]torch.RawTensor{
		"static.0.weight": {DType: torch.Float32, Shape: []int64{2, 3}, Data: f32(1, 2, 3, 4, 5, 6)},
		"hf.bias":         {DType: torch.Float32, Shape: []int64{2}, Data: f32(-0.5, 0.25)},
		"fus.1.weight":    {DType: torch.Float32, Shape: []int64{}, Data: f32(7)},
	}
}

// TestCheckpointSafetensors: the safetensors export holds the checkpoint's
// tensors, byte for byte, under the reference's names (or ours with
// --names m2mix), verifies as a checkpoint of ours, and is the same bytes
// when written again.
func TestCheckpointSafetensors(t *testing.T) {
	in := mimicTensors()
	run := fakeRun(t, "m2mixer_h", in, true)
	dir := t.TempDir()
	for _, c := range []struct {
		names string
		want  map[string]string // exported name -> ours
	}{
		{NamesReference, map[string]string{"static_extractor.module_list.0.weight": "static.0.weight", "classifier_fusion.classifer.bias": "hf.bias", "fusion_mixer.layer_norm.weight": "fus.1.weight"}},
		{NamesM2mix, map[string]string{"static.0.weight": "static.0.weight", "hf.bias": "hf.bias", "fus.1.weight": "fus.1.weight"}},
	} {
		out := filepath.Join(dir, c.names+".safetensors")
		res, err := Checkpoint(Options{Run: run, Out: out, Names: c.names})
		if err != nil {
			t.Fatal(err)
		}
		if res.Tensors != 3 || res.Params != 9 || res.Format != FormatSafetensors || res.Config != "m2mixer_h" || res.Seed != 7 {
			t.Errorf("%s: result %+v", c.names, res)
		}
		if (c.names == NamesReference) != (res.Class == "MimicMixerMultiLoss") {
			t.Errorf("%s: class %q", c.names, res.Class)
		}
		got, meta, err := torch.ReadSafetensors(out)
		if err != nil {
			t.Fatal(err)
		}
		if meta[torch.ChecksumKey] == "" || meta["m2mix.config"] != "m2mixer_h" || meta["m2mix.names"] != c.names || meta["m2mix.source_sha256"] != res.Source {
			t.Errorf("%s: metadata %v", c.names, meta)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d tensors, want %d", c.names, len(got), len(c.want))
		}
		for name, ours := range c.want {
			g, ok := got[name]
			if !ok {
				t.Fatalf("%s: no %q in %v", c.names, name, slices.Sorted(maps.Keys(got)))
			}
			if !bytes.Equal(g.Data, in[ours].Data) || !slices.Equal(g.Shape, in[ours].Shape) || g.DType != in[ours].DType {
				t.Errorf("%s: %q is not %q's tensor", c.names, name, ours)
			}
		}
		again := filepath.Join(dir, "again.safetensors")
		if _, err := Checkpoint(Options{Run: run, Out: again, Names: c.names}); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(out)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: a second export differs", c.names)
		}
	}
}

// TestCheckpointTorchZip: torch.save's layout (the archive/ entries, data
// on 64-byte boundaries, the raw tensor bytes), the same bytes on a second
// export. That PyTorch reads it is model's TestExportLoadsIntoReferenceClasses.
func TestCheckpointTorchZip(t *testing.T) {
	in := mimicTensors()
	run := fakeRun(t, "m2mixer_h", in, true)
	out := filepath.Join(t.TempDir(), "h.pt")
	if _, err := Checkpoint(Options{Run: run, Out: out}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	entries := map[string][]byte{}
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Store {
			t.Errorf("%s: method %d, want stored", f.Name, f.Method)
		}
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		if off%dataAlign != 0 {
			t.Errorf("%s: data at %d, not on a %d-byte boundary", f.Name, off, dataAlign)
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		entries[f.Name], err = io.ReadAll(r) // checks the CRC too
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
	}
	want := []string{"archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1", "archive/data/2", "archive/version"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries %v, want %v", names, want)
	}
	// Storages in the sorted order of the reference names.
	for i, ours := range []string{"hf.bias", "fus.1.weight", "static.0.weight"} {
		if !bytes.Equal(entries[want[2+i]], in[ours].Data) {
			t.Errorf("%s is not %s's bytes", want[2+i], ours)
		}
	}
	if string(entries["archive/version"]) != "3\n" || string(entries["archive/byteorder"]) != "little" {
		t.Errorf("version %q, byteorder %q", entries["archive/version"], entries["archive/byteorder"])
	}
	again := filepath.Join(t.TempDir(), "h.pt")
	if _, err := Checkpoint(Options{Run: run, Out: again, Format: FormatTorch}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("a second export differs")
	}
}

// TestCheckpointRefuses: what the export refuses, with an error naming the
// problem, and without writing the output.
func TestCheckpointRefuses(t *testing.T) {
	good := fakeRun(t, "m2mixer_h", mimicTensors(), true)
	unfinished := fakeRun(t, "m2mixer_h", mimicTensors(), false)
	baseline := fakeRun(t, "lenet_late_fusion", map[string]torch.RawTensor{"conv1.weight": {DType: torch.Float32, Shape: []int64{1}, Data: f32(1)}}, true)
	wrongArch := fakeRun(t, "m2mixer_s", mimicTensors(), true)
	int64s := fakeRun(t, "m2mixer_h", map[string]torch.RawTensor{"hf.bias": {DType: torch.Int64, Shape: []int64{1}, Data: make([]byte, 8)}}, true)

	corrupt := fakeRun(t, "m2mixer_h", mimicTensors(), true)
	b, _ := os.ReadFile(filepath.Join(corrupt, bestFile))
	b[len(b)-1] ^= 1
	os.WriteFile(filepath.Join(corrupt, bestFile), b, 0o644)

	// A safetensors file made elsewhere: no checksum.
	noSum := fakeRun(t, "m2mixer_h", mimicTensors(), true)
	hdr, _ := json.Marshal(map[string]any{"hf.bias": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}, "__metadata__": map[string]string{"config": "m2mixer_h"}})
	raw := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	os.WriteFile(filepath.Join(noSum, bestFile), append(append(raw, hdr...), f32(1, 2)...), 0o644)

	mixed := fakeRun(t, "m2mixer_h", mimicTensors(), true)
	os.Rename(filepath.Join(mixed, runrecord.FileName), filepath.Join(mixed, "r"))
	artifact.WriteJSON(filepath.Join(mixed, runrecord.FileName), runrecord.Record{Config: "m2mixer_lc", Final: &runrecord.Metrics{}})

	dir := t.TempDir()
	out := filepath.Join(dir, "x.pt")
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"not a run folder", Options{Run: dir, Out: out}, "has no record.json"},
		{"unfinished run", Options{Run: unfinished, Out: out}, "is not finished"},
		{"no reference class", Options{Run: baseline, Out: out}, `"lenet_late_fusion" has no class in the reference implementation`},
		{"names of another architecture", Options{Run: wrongArch, Out: out}, "has no name in AVMnistMixerMultiLoss's table"},
		{"not float32", Options{Run: int64s, Out: out}, "not float32"},
		{"corrupt checkpoint", Options{Run: corrupt, Out: out}, "corrupt"},
		{"no checksum", Options{Run: noSum, Out: out}, "has no checksum"},
		{"record and checkpoint disagree", Options{Run: mixed, Out: out}, `is of configuration "m2mixer_h", but`},
		{"unknown format", Options{Run: good, Out: out, Format: "onnx"}, `format "onnx"`},
		{"format not inferable", Options{Run: good, Out: filepath.Join(dir, "x.bin2")}, "cannot tell the format"},
		{"unknown names", Options{Run: good, Out: out, Names: "hf"}, `names "hf"`},
		{"onto the checkpoint", Options{Run: good, Out: filepath.Join(good, bestFile), Format: FormatSafetensors}, "is the checkpoint itself"},
	} {
		_, err := Checkpoint(c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s: %s was written", c.name, out)
		}
	}
	// --names m2mix exports a configuration without a reference class.
	if res, err := Checkpoint(Options{Run: baseline, Out: out, Names: NamesM2mix}); err != nil || res.Class != "" || res.Tensors != 1 {
		t.Errorf("--names m2mix: %+v, %v", res, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
