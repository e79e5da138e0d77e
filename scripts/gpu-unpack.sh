#!/usr/bin/env bash
# Unpacks what scripts/gpu-pack.sh put in build/gpu/ into build/ (once).
set -euo pipefail
cd "$(dirname "$0")/.."
for b in m2mix model.test torch.test; do
	if [ ! -x build/$b ] || [ build/gpu/$b.gz -nt build/$b ]; then
		gunzip -c build/gpu/$b.gz >build/$b.tmp && chmod +x build/$b.tmp && mv build/$b.tmp build/$b
	fi
done
