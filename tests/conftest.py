"""Fixtures shared by the whole suite.

Nothing here imports torch or transformers at module level, so tests that need no model stay
fast; the model fixtures import them when first used.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Hugging Face libraries read these when they are imported, so they are set here, before any
# test module is collected: no test may touch the Hub, and none may read or fill the user's cache.
_HF_HOME = tempfile.mkdtemp(prefix="rlkd-test-hf-home-")
os.environ.update(
    HF_HOME=_HF_HOME, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1"
)
# The test machines have 2 cores shared by several test runs; tiny models gain nothing from more.
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""All seven projections, like the recipes (and the gsrm adapter must target the same)."""


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A saved random-init tiny Qwen2 (hidden 64, 2 layers) with Qwen2.5's real tokenizer."""
    from rlkd_lite.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer, loaded once (parsing Qwen's tokenizer.json takes seconds).

    Shared: code under test must not mutate it (e.g. pass `padding_side` per call instead).
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _tiny_lora_config(**overrides):
    """LoRA r4 on all projections with random A *and* B (`init_lora_weights=False`), so that an
    adapter changes the model's outputs from the start (PEFT's default B=0 is a no-op)."""
    from peft import LoraConfig

    settings = dict(r=4, lora_alpha=8, target_modules=list(TINY_LORA_TARGETS),
                    init_lora_weights=False, task_type="CAUSAL_LM")
    return LoraConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_lora_config():
    """A factory: `tiny_lora_config(**overrides) -> LoraConfig` for the tiny model."""
    return _tiny_lora_config


@pytest.fixture
def tiny_peft_model(tiny_model_dir):
    """A fresh tiny PeftModel in train mode: trainable `default` and frozen `gsrm` adapters,
    both random (they, and the bare base model, give different outputs); `default` active."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from rlkd_lite.models.adapters import add_frozen_adapter

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, _tiny_lora_config())
    add_frozen_adapter(model, "gsrm", _tiny_lora_config())
    model.train()
    return model
