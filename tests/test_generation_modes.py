"""Generation in the middle of training leaves an Unsloth model in training mode.

On a GPU, Unsloth's generate switches an eval-mode model to inference mode (gradient
checkpointing off) and leaves it there; the GSRM generates from eval mode inside the reward.
Unsloth's GPU model code cannot be imported on a CPU machine (it patches transformers for the
GPU), so these tests give the CPU-loaded student stand-ins for the two methods Unsloth's GPU
loader attaches, doing what they do to the flags `keep_training_mode` reads: `for_inference`
sets `_flag_for_generation` and turns gradient checkpointing off, `for_training` removes the
flag and sets the mode it is given. scripts/gpu_decode_check.py checks the real ones on a GPU.
"""
from __future__ import annotations

import sys
import types

import pytest

from tests.conftest import TINY_LORA_TARGETS


def _set_checkpointing(model, mode) -> None:
    for module in model.modules():
        if hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = mode


def _for_inference(model) -> None:
    model._flag_for_generation = True
    _set_checkpointing(model, False)


def _for_training(model, use_gradient_checkpointing=None) -> None:
    model.__dict__.pop("_flag_for_generation", None)
    _set_checkpointing(model, use_gradient_checkpointing)
    model.train()


@pytest.fixture
def unsloth_student(tiny_model_dir):
    from rlkd_lite.models.loading import LoraSettings, load_student

    model, tokenizer = load_student(
        str(tiny_model_dir), backend="unsloth", max_seq_length=512,
        lora=LoraSettings(4, 8, 0.0, TINY_LORA_TARGETS))
    model.for_inference = types.MethodType(_for_inference, model)
    model.for_training = types.MethodType(_for_training, model)
    model.for_training(use_gradient_checkpointing="unsloth")  # the GPU loader's mode
    return model, tokenizer


def _inference_flag(model) -> bool:
    return bool(getattr(model, "_flag_for_generation", False))


def test_use_adapter_puts_an_unsloth_model_back_in_training_mode(unsloth_student):
    from rlkd_lite.models.adapters import use_adapter
    from rlkd_lite.models.generation import gradient_checkpointing_mode, is_unsloth_model

    model, _ = unsloth_student
    assert is_unsloth_model(model)
    mode = gradient_checkpointing_mode(model)
    assert mode and not _inference_flag(model) and model.training
    with use_adapter(model, None):
        model.for_inference()  # what Unsloth's GPU generate does to an eval-mode model
        assert _inference_flag(model) and not gradient_checkpointing_mode(model)
    assert gradient_checkpointing_mode(model) == mode == "unsloth"
    assert not _inference_flag(model) and model.training


def test_a_model_already_in_inference_mode_stays_there(unsloth_student):
    from rlkd_lite.models.adapters import use_adapter

    model, _ = unsloth_student
    model.for_inference()
    with use_adapter(model, None):
        pass
    assert _inference_flag(model)


def test_gsrm_decomposer_leaves_the_student_training(unsloth_student, monkeypatch):
    from rlkd_lite.models.generation import gradient_checkpointing_mode
    from rlkd_lite.structure.decomposers import DecomposeInput
    from rlkd_lite.structure.llm import GSRMDecomposer

    model, tokenizer = unsloth_student
    plain_generate = model.generate

    def generate_like_unsloth_on_a_gpu(*args, **kwargs):
        model.for_inference()
        return plain_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate_like_unsloth_on_a_gpu)
    texts = GSRMDecomposer(model, tokenizer, max_new_tokens=4).completions(
        [DecomposeInput("What is 2 + 3?", "2 + 3 = 5.")])
    assert len(texts) == 1
    assert gradient_checkpointing_mode(model) == "unsloth" and not _inference_flag(model)
    assert model.training


def test_helpers_are_no_ops_on_a_model_without_unsloth(tiny_peft_model):
    from rlkd_lite.models.generation import decode_graphs, is_unsloth_model, keep_training_mode

    assert not is_unsloth_model(tiny_peft_model)
    with keep_training_mode(tiny_peft_model), decode_graphs(tiny_peft_model):
        tiny_peft_model.eval()
    assert not tiny_peft_model.training  # nothing was restored: there was nothing to restore


def test_allow_decode_graphs_adds_the_model_type_where_unsloth_graphs(monkeypatch):
    from rlkd_lite.models.generation import allow_decode_graphs

    module = "unsloth.models._decode_graphs"
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert not allow_decode_graphs("qwen2")  # a CPU machine: nothing to allow
    graphs = types.SimpleNamespace(rl_generation=None, release_for_training=None,
                                   _SUPPORTED_MODEL_TYPES={"llama", "qwen3"})
    monkeypatch.setitem(sys.modules, module, graphs)
    assert allow_decode_graphs("qwen2")
    assert graphs._SUPPORTED_MODEL_TYPES == {"llama", "qwen3", "qwen2"}
