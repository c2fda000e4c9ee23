#!/usr/bin/env bash
# Creates .venv/ at the repo root with the whole OpenMMLab stack, builds (or reuses) mmcv 2.1.0 with
# its compiled ops, installs mmkd editable and prepares Fashion-MNIST under data/fashion_mnist.
# Idempotent: a second run reuses the venv and the cached mmcv wheel.
#   MMKD_CACHE   where the built mmcv wheel is kept (default ~/.cache/mmkd), outside the repo
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${MMKD_CACHE:-$HOME/.cache/mmkd}"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STEP="start"
trap 'echo "setup_env.sh: FAILED at step: $STEP (see the output above)" >&2' ERR
say() { STEP="$1"; echo "==> [$(date +%H:%M:%S)] $1"; }

export PIP_CONSTRAINT="$ROOT/requirements/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

say "create virtual environment in .venv"
[ -x "$PY" ] || python3 -m venv "$VENV"
pip() { "$PY" -m pip "$@"; }

say "install torch, torchvision and the pinned base packages"
pip install -q -r requirements/runtime.txt -r requirements/tests.txt wheel

MMCV_WHL_DIR="$CACHE/wheels"
mmcv_ops_ok() { "$PY" -c "import mmcv, mmcv.ops; from mmcv.ops import nms, RoIAlign; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; }
if mmcv_ops_ok; then
  say "mmcv 2.1.0 with ops already installed"
else
  TORCH_TAG="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')"
  WHL_DIR="$MMCV_WHL_DIR/torch-$TORCH_TAG"
  if ! ls "$WHL_DIR"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
    say "build mmcv 2.1.0 from its sdist (about 14 minutes on 2 cores; cached afterwards in $WHL_DIR)"
    BUILD="$(mktemp -d)"
    # mmcv's setup.py imports pkg_resources (setuptools<70), torch 2.14 wants setuptools>=77:
    # hold the old one only for the build, then put the new one back.
    pip install -q 'setuptools<70'
    pip download -q --no-deps --no-binary :all: --no-build-isolation mmcv==2.1.0 -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-2.1.0.tar.gz -C "$BUILD"
    # torch 2.14's headers need C++20; mmcv's setup.py hard-codes older standards.
    sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-2.1.0/setup.py"
    mkdir -p "$WHL_DIR"
    (cd "$BUILD/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="$(nproc)" \
       "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WHL_DIR" .)
    pip install -q 'setuptools>=77.0.3,<81'
    rm -rf "$BUILD"
  fi
  say "install the cached mmcv wheel"
  pip install -q "$(ls "$WHL_DIR"/mmcv-2.1.0-*.whl | head -n1)"
  mmcv_ops_ok || { echo "mmcv installed but mmcv.ops does not import" >&2; false; }
fi

say "install mmkd (editable)"
pip install -q --no-deps --no-build-isolation -e .

# openmim without its dependencies: they pin setuptools, rich, requests and pull numpy 2
# (requirements/mim.txt says which; docs/mim.md)
say "install mim (mim train|test|search mmkd)"
pip install -q --no-deps openmim==0.3.9 model-index==0.1.11
pip install -q -r requirements/mim.txt  # under PIP_CONSTRAINT, as every pip call here

say "prepare Fashion-MNIST in data/fashion_mnist"
SRC=/usr/share/datasets/fashion-mnist
if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q dataset-fashion-mnist >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    sudo apt-get install -y -q dataset-fashion-mnist >/dev/null
  fi
fi
DATA="$ROOT/data/fashion_mnist"
mkdir -p "$DATA"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -s "$DATA/$f" ] || gunzip -c "$SRC/$f.gz" > "$DATA/$f"
done

say "check the environment"
"$PY" - <<'PY'
import torch, mmcv, mmengine, mmpretrain, mmdet, mmseg
from mmcv.ops import nms, RoIAlign  # noqa: F401
import mmdet.models, mmseg.models, mmpretrain.models, mmkd  # noqa: F401
print(f'torch {torch.__version__}  mmengine {mmengine.__version__}  mmcv {mmcv.__version__}  '
      f'mmpretrain {mmpretrain.__version__}  mmdet {mmdet.__version__}  mmseg {mmseg.__version__}')
PY
say "done"
echo "Environment ready: source .venv/bin/activate"
