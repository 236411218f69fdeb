#!/usr/bin/env bash
# Fill benchmarks/wheelhouse/ (git-ignored) with the wheels a GPU machine's Python may lack to run
# benchmarks/gpu_suite.py: robustperf's light dependencies, the AutoAttack reference and NVML's bindings.
# torch, numpy, scipy, pandas, scikit-learn and matplotlib are expected on a GPU image and are not included.
# Run it where PyPI is reachable, with the Python (version and platform) of the GPU machine; ship the
# folder beside the suite, then there: python benchmarks/gpu_suite.py --install-wheelhouse (pip --no-index).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
OUT=wheelhouse
LIMIT_MIB=64
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -m pip download -q --only-binary=:all: --no-deps -d "$OUT" \
  pydantic pydantic-core annotated-types typing-inspection typing-extensions \
  typer click rich markdown-it-py mdurl pygments shellingham \
  pyyaml timm huggingface-hub safetensors filelock fsspec tqdm packaging \
  nvidia-ml-py "pyautoattack==0.2.0" submitit cloudpickle
# the project itself, as a wheel built from this checkout
"$PY" -m pip wheel -q --no-deps -w "$OUT" ..
size=$(du -sm "$OUT" | cut -f1)
count=$(ls "$OUT"/*.whl | wc -l)
echo "wheelhouse: $count wheels, ${size} MiB in benchmarks/$OUT (limit ${LIMIT_MIB} MiB)"
if [ "$size" -gt "$LIMIT_MIB" ]; then
  echo "the wheelhouse is over ${LIMIT_MIB} MiB: drop what the GPU image already has" >&2
  exit 1
fi
