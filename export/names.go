package export

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Architecture is one class of the reference implementation
// (bezirganyan/m2-mixer) and the table that renames our checkpoint's
// parameters to that class's state_dict names. Shapes and layouts already
// agree on both sides (docs/pytorch-names.md), so renaming is all an export
// does.
type Architecture struct {
	Class  string // the reference class
	Module string // the reference file that defines it
	rules  []rule
}

// rule renames every parameter whose whole name matches ours to reference,
// in which $1, $2, ... stand for ours's groups.
type rule struct{ ours, reference string }

// The reference's building blocks (modules/mixer.py) nest as follows:
//
//	MLPMixer            to_patch_embedding.0 (Conv2d), mixer_blocks.<i>, layer_norm
//	MLPMixerNoPatching  proj (Linear), mixer_blocks.<i>, layer_norm
//	FusionMixer         mixer_blocks.<i>, layer_norm
//	MixerBlock          token_mix   = LayerNorm, Rearrange, FeedForward, Rearrange
//	                    channel_mix = LayerNorm, FeedForward
//	FeedForward         net = Linear, GELU, Dropout, Linear, Dropout
//
// Ours name a block's parts ln1, tok, ln2, ch with the same FeedForward
// indices (0 and 3), a fusion Mixer's final LayerNorm fus.<blocks>.

// mixerBlocks renames the Mixer blocks of our encoder (or fusion) ours to
// those of the reference module ref.
func mixerBlocks(ours, ref string) []rule {
	return []rule{
		{`^` + ours + `\.blocks\.(\d+)\.ln1\.(weight|bias)$`, ref + `.mixer_blocks.$1.token_mix.0.$2`},
		{`^` + ours + `\.blocks\.(\d+)\.tok\.([03])\.(weight|bias)$`, ref + `.mixer_blocks.$1.token_mix.2.net.$2.$3`},
		{`^` + ours + `\.blocks\.(\d+)\.ln2\.(weight|bias)$`, ref + `.mixer_blocks.$1.channel_mix.0.$2`},
		{`^` + ours + `\.blocks\.(\d+)\.ch\.([03])\.(weight|bias)$`, ref + `.mixer_blocks.$1.channel_mix.1.net.$2.$3`},
	}
}

// patchMixer renames our patch encoder ours to the reference's MLPMixer ref.
func patchMixer(ours, ref string) []rule {
	return append([]rule{
		{`^` + ours + `\.emb\.(weight|bias)$`, ref + `.to_patch_embedding.0.$1`},
		{`^` + ours + `\.ln\.(weight|bias)$`, ref + `.layer_norm.$1`},
	}, mixerBlocks(ours, ref)...)
}

// fusionMixer renames our fusion Mixer to the reference's FusionMixer.
func fusionMixer() []rule {
	// Our fusion's blocks are fus.0 .. fus.<n-1> and its LayerNorm fus.<n>.
	return []rule{
		{`^fus\.(\d+)\.ln1\.(weight|bias)$`, `fusion_mixer.mixer_blocks.$1.token_mix.0.$2`},
		{`^fus\.(\d+)\.tok\.([03])\.(weight|bias)$`, `fusion_mixer.mixer_blocks.$1.token_mix.2.net.$2.$3`},
		{`^fus\.(\d+)\.ln2\.(weight|bias)$`, `fusion_mixer.mixer_blocks.$1.channel_mix.0.$2`},
		{`^fus\.(\d+)\.ch\.([03])\.(weight|bias)$`, `fusion_mixer.mixer_blocks.$1.channel_mix.1.net.$2.$3`},
		{`^fus\.\d+\.(weight|bias)$`, `fusion_mixer.layer_norm.$1`},
	}
}

// head renames our Linear head ours to ref.
func head(ours, ref string) rule {
	return rule{`^` + ours + `\.(weight|bias)$`, ref + `.$1`}
}

func concat(parts ...[]rule) []rule { return slices.Concat(parts...) }

// The tables, one per reference class.

// avmnistMixerMultiLoss: M2-Mixer S, M and B (models/avmnist.py). The
// fusion head is a StandardClassifier, whose Linear the reference spells
// "classifer".
func avmnistMixerMultiLoss() *Architecture {
	return &Architecture{Class: "AVMnistMixerMultiLoss", Module: "models/avmnist.py", rules: concat(
		patchMixer("img", "image_mixer"),
		patchMixer("aud", "audio_mixer"),
		fusionMixer(),
		[]rule{
			head("hf", "classifier_fusion.classifer"),
			head("hi", "classifier_image"),
			head("ha", "classifier_audio"),
		},
	)}
}

// avmnistMixer: MMixer, one head on the fused tokens (models/avmnist.py).
func avmnistMixer() *Architecture {
	return &Architecture{Class: "AVMnistMixer", Module: "models/avmnist.py", rules: concat(
		patchMixer("img", "image_mixer"),
		patchMixer("aud", "audio_mixer"),
		fusionMixer(),
		[]rule{head("hf", "classifier.classifer")},
	)}
}

// avmnistImageMixer: one encoder ("model") and a Linear head ("classifier")
// on its token average (models/avmnist.py): the uni-modal image model, and
// the structure of an image probe (an encoder and a Linear head).
func avmnistImageMixer() *Architecture {
	return &Architecture{Class: "AVMnistImageMixer", Module: "models/avmnist.py", rules: concat(
		patchMixer("img", "model"),
		[]rule{head("hi", "classifier")},
	)}
}

// avmnistAudioMixer: as avmnistImageMixer, for the spectrogram.
func avmnistAudioMixer() *Architecture {
	return &Architecture{Class: "AVMnistAudioMixer", Module: "models/avmnist.py", rules: concat(
		patchMixer("aud", "model"),
		[]rule{head("ha", "classifier")},
	)}
}

// mimicMixerMultiLoss: M2-Mixer H and LC (models/mimic.py). The static
// encoder is the reference's MLP (Linear, ReLU, Dropout twice, then the
// output Linear: module_list 0, 3, 6), the time series an
// MLPMixerNoPatching whose per-step Linear is "proj".
func mimicMixerMultiLoss() *Architecture {
	return &Architecture{Class: "MimicMixerMultiLoss", Module: "models/mimic.py", rules: concat(
		[]rule{
			{`^static\.([036])\.(weight|bias)$`, `static_extractor.module_list.$1.$2`},
			{`^time\.emb\.(weight|bias)$`, `time_mixer.proj.$1`},
			{`^time\.ln\.(weight|bias)$`, `time_mixer.layer_norm.$1`},
		},
		mixerBlocks("time", "time_mixer"),
		fusionMixer(),
		[]rule{
			head("hf", "classifier_fusion.classifer"),
			head("hs", "classifier_static"),
			head("ht", "classifier_time"),
		},
	)}
}

// ReferenceArchitecture returns the reference class a configuration's
// checkpoints export to, or an error naming the configuration when the
// reference has none (a baseline of MultiBench's, say).
func ReferenceArchitecture(config string) (*Architecture, error) {
	switch config {
	case "m2mixer_s", "m2mixer_m", "m2mixer_b":
		return avmnistMixerMultiLoss(), nil
	case "mmixer":
		return avmnistMixer(), nil
	case "unimodal_image", "probe_image":
		return avmnistImageMixer(), nil
	case "unimodal_audio", "probe_audio":
		return avmnistAudioMixer(), nil
	case "m2mixer_h", "m2mixer_lc":
		return mimicMixerMultiLoss(), nil
	}
	return nil, fmt.Errorf("configuration %q has no class in the reference implementation (bezirganyan/m2-mixer), so its weights have no reference names: export it with --names m2mix to keep ours (exportable with reference names: %s)",
		config, strings.Join(ExportableConfigs(), ", "))
}

// ExportableConfigs lists the configurations ReferenceArchitecture knows.
func ExportableConfigs() []string {
	return []string{"m2mixer_s", "m2mixer_m", "m2mixer_b", "mmixer", "unimodal_image", "unimodal_audio",
		"probe_image", "probe_audio", "m2mixer_h", "m2mixer_lc"}
}

// Rename maps each of our parameter names to the reference's. Every name
// must match exactly one rule of the table, and no two may map to the same
// reference name.
func (a *Architecture) Rename(names []string) (map[string]string, error) {
	res := make([]*regexp.Regexp, len(a.rules))
	for i, r := range a.rules {
		res[i] = regexp.MustCompile(r.ours)
	}
	out := map[string]string{}
	from := map[string]string{} // reference name -> ours
	for _, n := range names {
		var got []string
		for i, re := range res {
			if re.MatchString(n) {
				got = append(got, re.ReplaceAllString(n, a.rules[i].reference))
			}
		}
		switch {
		case len(got) == 0:
			return nil, fmt.Errorf("parameter %q has no name in %s's table (%s): the checkpoint is not of that architecture", n, a.Class, a.Module)
		case len(got) > 1:
			return nil, fmt.Errorf("parameter %q matches %d rules of %s's table (%v): the table is ambiguous", n, len(got), a.Class, got)
		}
		if prev, dup := from[got[0]]; dup {
			return nil, fmt.Errorf("parameters %q and %q would both be %s's %q", prev, n, a.Class, got[0])
		}
		from[got[0]] = n
		out[n] = got[0]
	}
	return out, nil
}
