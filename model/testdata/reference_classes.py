#!/usr/bin/python3
"""The reference implementation's classes, for model/export_test.go.

The modules here are named and nested as bezirganyan/m2-mixer names them
(modules/mixer.py, modules/mlp.py, modules/classification.py and the classes
of models/avmnist.py and models/mimic.py), so their state_dict() names are the
reference's, and they compute what the reference's forward passes compute
(its shared_step / get_logits, in eval mode). They are written for this test:
PyTorch Lightning, einops and the training code are left out (none of them
holds a parameter), and sizes come from the job instead of the reference's
YAML files.

usage: /usr/bin/python3 reference_classes.py JOB.json

JOB.json is {"cases": [{"class": NAME, "sizes": {...}, "torch": PATH,
"safetensors": PATH, "inputs": PATH, "out": PATH}, ...]}. For each case it
  - loads PATH "torch" with torch.load (and again with weights_only=True,
    which must give the same tensors),
  - reads "safetensors" (safetensors.torch.load_file where installed, else
    by hand) and requires exactly the same names and values,
  - builds the class, load_state_dict(..., strict=True),
  - runs the batch in "inputs" in eval mode and writes each head's logits to
    "out" as logits.<head>, and the export's names as a JSON list in the
    metadata ("names").
"""
import json
import sys

import torch
import torch.nn as nn

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import read_safetensors, write_safetensors  # noqa: E402


# ------------------------------------------------------------ modules/mixer.py

class Rearrange(nn.Module):
    """The einops layers the reference uses, for the patterns it uses."""

    def __init__(self, pattern):
        super().__init__()
        self.pattern = pattern

    def forward(self, x):
        if self.pattern in ("b n d -> b d n", "b d n -> b n d"):
            return x.transpose(1, 2)
        if self.pattern == "b c h w -> b (h w) c":
            return x.flatten(2).transpose(1, 2)
        raise ValueError(self.pattern)


class FeedForward(nn.Module):
    def __init__(self, dim, hidden_dim, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class MixerBlock(nn.Module):
    def __init__(self, hidden_dim, num_patch, token_dim, channel_dim, dropout=0.0):
        super().__init__()
        self.token_mix = nn.Sequential(nn.LayerNorm(hidden_dim), Rearrange("b n d -> b d n"),
                                       FeedForward(num_patch, token_dim, dropout), Rearrange("b d n -> b n d"))
        self.channel_mix = nn.Sequential(nn.LayerNorm(hidden_dim), FeedForward(hidden_dim, channel_dim, dropout))

    def forward(self, x):
        x = x + self.token_mix(x)
        return x + self.channel_mix(x)


class MixerStack(nn.Module):
    """What the reference's three Mixers share: mixer_blocks then layer_norm."""

    def __init__(self, hidden_dim, num_patch, num_mixers, token_dim, channel_dim, dropout):
        super().__init__()
        self.num_patch = num_patch
        self.mixer_blocks = nn.ModuleList(
            [MixerBlock(hidden_dim, num_patch, token_dim, channel_dim, dropout) for _ in range(num_mixers)])
        self.layer_norm = nn.LayerNorm(hidden_dim)

    def mix(self, x):
        for block in self.mixer_blocks:
            x = block(x)
        return self.layer_norm(x)


class MLPMixer(MixerStack):
    def __init__(self, in_channels, hidden_dim, patch_size, image_size, num_mixers, token_dim, channel_dim, dropout=0.0):
        super().__init__(hidden_dim, (image_size // patch_size) ** 2, num_mixers, token_dim, channel_dim, dropout)
        self.to_patch_embedding = nn.Sequential(nn.Conv2d(in_channels, hidden_dim, patch_size, patch_size),
                                                Rearrange("b c h w -> b (h w) c"))

    def forward(self, x):
        return self.mix(self.to_patch_embedding(x))


class MLPMixerNoPatching(MixerStack):
    def __init__(self, hidden_dim, num_patch, num_mixers, token_dim, channel_dim, embedding_dim, proj_dim, dropout=0.0):
        super().__init__(hidden_dim, num_patch, num_mixers, token_dim, channel_dim, dropout)
        self.proj = nn.Linear(embedding_dim, proj_dim)

    def forward(self, x):
        return self.mix(self.proj(x))


class FusionMixer(MixerStack):
    def forward(self, x):
        return self.mix(x)


# -------------------------------------- modules/mlp.py, modules/classification.py

class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_blocks, output_dim, dropout=0.0):
        super().__init__()
        self.module_list = nn.ModuleList()
        for i in range(num_blocks):
            self.module_list.append(nn.Linear(input_dim if i == 0 else hidden_dim, hidden_dim))
            self.module_list.append(nn.ReLU())
            self.module_list.append(nn.Dropout(dropout))
        self.module_list.append(nn.Linear(hidden_dim, output_dim))

    def forward(self, x):
        for m in self.module_list:
            x = m(x)
        return x


class StandardClassifier(nn.Module):
    def __init__(self, hidden_dim, num_classes):
        super().__init__()
        self.classifer = nn.Linear(hidden_dim, num_classes)  # the reference's spelling

    def forward(self, x):
        return self.classifer(x.reshape(x.shape[0], -1, x.shape[-1]).mean(dim=1))


# ------------------------------------------------------------ models/avmnist.py

def image_mixer(s):
    return MLPMixer(1, s["hidden"], 14, 28, s["blocks"], s["token_dim"], s["channel_dim"], s["dropout"])


def audio_mixer(s):
    return MLPMixer(1, s["hidden"], 56, 112, s["blocks"], s["token_dim"], s["channel_dim"], s["dropout"])


def fusion_mixer(s, tokens):
    return FusionMixer(s["hidden"], tokens, s["fusion_blocks"], s["fusion_token_dim"], s["fusion_channel_dim"], s["dropout"])


class AVMnistMixerMultiLoss(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.image_mixer = image_mixer(s)
        self.audio_mixer = audio_mixer(s)
        self.fusion_mixer = fusion_mixer(s, self.image_mixer.num_patch + self.audio_mixer.num_patch)
        self.classifier_image = nn.Linear(s["hidden"], 10)
        self.classifier_audio = nn.Linear(s["hidden"], 10)
        self.classifier_fusion = StandardClassifier(s["hidden"], 10)

    def forward(self, batch):
        image = self.image_mixer(batch["image"])
        audio = self.audio_mixer(batch["audio"])
        fused = self.fusion_mixer(torch.cat((image, audio), dim=1))  # ConcatFusion along the tokens
        return {"fusion": self.classifier_fusion(fused), "image": self.classifier_image(image.mean(dim=1)),
                "audio": self.classifier_audio(audio.mean(dim=1))}


class AVMnistMixer(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.image_mixer = image_mixer(s)
        self.audio_mixer = audio_mixer(s)
        self.fusion_mixer = fusion_mixer(s, self.image_mixer.num_patch + self.audio_mixer.num_patch)
        self.classifier = StandardClassifier(s["hidden"], 10)

    def forward(self, batch):
        fused = self.fusion_mixer(torch.cat((self.image_mixer(batch["image"]), self.audio_mixer(batch["audio"])), dim=1))
        return {"fusion": self.classifier(fused)}


class AVMnistImageMixer(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.model = image_mixer(s)
        self.classifier = nn.Linear(s["hidden"], 10)

    def forward(self, batch):
        return {"image": self.classifier(self.model(batch["image"]).mean(dim=1))}


class AVMnistAudioMixer(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.model = audio_mixer(s)
        self.classifier = nn.Linear(s["hidden"], 10)

    def forward(self, batch):
        return {"audio": self.classifier(self.model(batch["audio"]).mean(dim=1))}


# -------------------------------------------------------------- models/mimic.py

class MimicMixerMultiLoss(nn.Module):
    def __init__(self, s):
        super().__init__()
        d = s["hidden"]
        self.time_mixer = MLPMixerNoPatching(d, 24, s["blocks"], s["token_dim"], s["channel_dim"], 12, d, s["dropout"])
        self.static_extractor = MLP(5, d, 2, d, s["dropout"])
        self.fusion_mixer = fusion_mixer(s, 1 + self.time_mixer.num_patch)
        self.classifier_static = nn.Linear(d, 6)
        self.classifier_time = nn.Linear(d, 6)
        self.classifier_fusion = StandardClassifier(d, 6)

    def forward(self, batch):
        static = self.static_extractor(batch["static"])
        time = self.time_mixer(batch["time"])
        fused = self.fusion_mixer(torch.cat((static.unsqueeze(1), time), dim=1))
        return {"fusion": self.classifier_fusion(fused), "static": self.classifier_static(static),
                "time": self.classifier_time(time.mean(1))}


CLASSES = {c.__name__: c for c in (AVMnistMixerMultiLoss, AVMnistMixer, AVMnistImageMixer, AVMnistAudioMixer,
                                   MimicMixerMultiLoss)}


def load_safetensors(path):
    try:
        from safetensors.torch import load_file
    except ImportError:
        return {k: torch.from_numpy(v) for k, v in read_safetensors(path).items()}
    return load_file(path)


def run_case(case):
    sd = torch.load(case["torch"])
    strict = torch.load(case["torch"], weights_only=True)
    st = load_safetensors(case["safetensors"])
    for name, other in (("torch.load(weights_only=True)", strict), ("the safetensors export", st)):
        if sorted(other) != sorted(sd):
            raise SystemExit(f"{case['class']}: {name} has names {sorted(other)}, torch.load {sorted(sd)}")
        for k, v in sd.items():
            if v.dtype != other[k].dtype or v.shape != other[k].shape or not torch.equal(v, other[k]):
                raise SystemExit(f"{case['class']}: {name} differs from torch.load at {k}")
    model = CLASSES[case["class"]](case["sizes"])
    model.load_state_dict(sd, strict=True)  # every name and shape must be the class's
    model.eval()
    batch = {k: torch.from_numpy(v) for k, v in read_safetensors(case["inputs"]).items()}
    with torch.no_grad():
        logits = model(batch)
    write_safetensors(case["out"], {"logits." + h: v.numpy() for h, v in logits.items()},
                      {"names": json.dumps(list(sd)), "torch": torch.__version__})


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job["cases"]:
        run_case(case)


if __name__ == "__main__":
    main()
