#!/usr/bin/env bash
# The M2-Mixer part of the paper profile on one GPU (the mixers, uni-modal
# models and probes, 10 seeds each; ONLY=... names another part, e.g. the
# baselines), data preparation included, timed: the issue's "M2-Mixer part
# of the paper in one command of at most 9 minutes" measurement. For a
# machine with CUDA and PyTorch but no Go: carry build/gpu
# (scripts/gpu-pack.sh).
#
# AV-MNIST is generated from the carried inputs pack; MIMIC-III is skipped
# (no im.pk travels). Run records (not checkpoints) and the report's tables
# are copied to $OUT (or build/gpu-out), with the log and a GPU utilisation
# trace. LIMIT (seconds, default 560) stops the run so that what was done
# still comes back from a 10-minute call.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-out}
LIMIT=${LIMIT:-560}
ONLY=${ONLY:-mmixer,m2mixer_b,m2mixer_m,m2mixer_s,m2mixer_h,m2mixer_lc,unimodal_image,unimodal_audio,probe_image,probe_audio}
mkdir -p "$OUT"
bash scripts/gpu-unpack.sh
export M2MIX_SHIM=$PWD/build/libm2mix_torch.so
if ! { [ -f "$M2MIX_SHIM" ] && build/m2mix env 2>/dev/null | grep -q '^cuda: *usable'; }; then
	bash scripts/gpu-shim.sh >"$OUT/shim-build.log" 2>&1 || { tail -30 "$OUT/shim-build.log"; exit 1; }
fi
build/m2mix env | tee "$OUT/env.txt"
work=$(mktemp -d)
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 >"$OUT/gpu-util.csv" 2>/dev/null &
smi=$!
start=$(date +%s)
set +e
timeout "$LIMIT" build/m2mix reproduce --profile paper --only "$ONLY" --device cuda --avmnist-pack build/gpu/avmnist-inputs.pack \
	--data "$work/data" --runs "$work/runs" --results "$work/results" --lock "$work/m2mix.lock" ${JOBS:+--jobs $JOBS} >"$OUT/reproduce.log" 2>&1
rc=$?
set -e
end=$(date +%s)
kill $smi 2>/dev/null || true
(cd "$work" && { find runs -name record.json 2>/dev/null; [ -d results ] && echo results; } | tar -cf - -T -) | tar -xf - -C "$OUT" || true
grep -E '^\[|CUDA graph|report:|FAILED' "$OUT/reproduce.log" | tail -60 || true
echo "reproduce --profile paper --only $ONLY: exit $rc after $((end - start)) s (limit $LIMIT s)"
