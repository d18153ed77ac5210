#!/usr/bin/env bash
# The GPU check as one command for a bare CUDA machine (CUDA torch, nvcc and ninja; none of this project's
# other packages; no network):
#
#   benchmarks/gpu_check.sh WHEELS WORKSPACE [MINUTES [DEADLINE]]
#
# WHEELS: a folder of the wheels the machine lacks, made where pip works, e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       -d WHEELS gsplat smplx platformdirs diffusers trimesh plyfile
# WORKSPACE: a workspace fitted and generated on any machine (persona-studio fit, then generate).
# MINUTES: how long the quality preset's run may take before it stops and projects the rest (default 4);
# DEADLINE: a Unix time by which everything must have ended (a device lease's limit): the run stops sooner.
#
# It installs the wheels beside the machine's packages, compiles gsplat's kernels for this GPU (timed:
# gsplat builds them on first use), runs the CUDA tests (pytest -m cuda; the trainer's needs MediaPipe for
# its fit, and runs where that is installed), then benchmarks/gpu_check.py with the quality run. Where
# gsplat cannot build, that is said and the rest runs on CUDA with the PyTorch reference rasteriser.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: benchmarks/gpu_check.sh WHEELS WORKSPACE [MINUTES [DEADLINE]]" >&2; exit 2; }
wheels=$1 workspace=$2 minutes=${3:-4} deadline=${4:-}
site=${TMPDIR:-/tmp}/persona_studio_site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl \
    || { echo "could not install the wheels in $wheels" >&2; exit 1; }
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
capability=$(python3 -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())') \
    || { echo "PyTorch sees no CUDA device here" >&2; exit 1; }
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$capability} MAX_JOBS=${MAX_JOBS:-$(nproc)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
start=$(date +%s)
if python3 -c 'from gsplat.cuda._backend import _C; assert _C is not None, "gsplat could not build its kernels"'; then
    echo "gsplat compiled its CUDA kernels for sm_${capability/./} in $(( $(date +%s) - start )) s (once per machine)"
else
    echo "gsplat could not build its CUDA kernels (above): it is removed, the rest uses the PyTorch reference on CUDA"
    rm -rf "$site"/gsplat "$site"/gsplat-*
fi
tests=(tests/test_device.py tests/test_render.py tests/test_avatar.py tests/test_mimicmotion.py tests/test_export.py
       tests/test_app_parts.py)
python3 -c 'import mediapipe' 2>/dev/null && tests+=(tests/test_train.py)
python3 -m pytest -q -p no:cacheprovider -m cuda "${tests[@]}"
python3 benchmarks/gpu_check.py --workspace "$workspace" --full --full-minutes "$minutes" ${deadline:+--deadline "$deadline"}
