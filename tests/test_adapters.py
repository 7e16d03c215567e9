"""Adapter swapping on the tiny model: switching to gsrm and back must leave no trace."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rlkd_lite.models.adapters import (  # noqa: E402
    adapter_state_fingerprint,
    add_frozen_adapter,
    use_adapter,
)

pytestmark = pytest.mark.slow

PROMPT_IDS = [[151644, 872, 198, 6023, 151645, 198, 151644, 77091, 198]]


def _grad_flags(model):
    return {name: param.requires_grad for name, param in model.named_parameters()}


def _modes(model):
    return {name: module.training for name, module in model.named_modules()}


def _logits(model):
    return model(input_ids=torch.tensor(PROMPT_IDS)).logits


def test_use_adapter_restores_adapter_grads_and_modes(tiny_peft_model):
    model = tiny_peft_model
    model.base_model.model.lm_head.eval()  # a mixed train/eval state must come back exactly
    flags, modes = _grad_flags(model), _modes(model)
    assert any(flags[n] for n in flags if ".default." in n)
    assert not any(flags[n] for n in flags if ".gsrm." in n)

    for name in ("gsrm", None, "default"):
        with use_adapter(model, name):
            assert not model.training
            assert not torch.is_grad_enabled()
            assert not any(_grad_flags(model).values())
            if name is not None:
                assert model.active_adapter == name
        assert model.active_adapter == "default"
        assert _grad_flags(model) == flags
        assert _modes(model) == modes
        assert torch.is_grad_enabled()


def test_use_adapter_restores_after_an_error(tiny_peft_model):
    flags = _grad_flags(tiny_peft_model)
    with pytest.raises(RuntimeError, match="boom"), use_adapter(tiny_peft_model, "gsrm"):
        raise RuntimeError("boom")
    assert tiny_peft_model.active_adapter == "default"
    assert _grad_flags(tiny_peft_model) == flags
    assert tiny_peft_model.training


def test_outputs_differ_between_adapters(tiny_peft_model, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    with use_adapter(tiny_peft_model, "default"):
        student = _logits(tiny_peft_model)
    with use_adapter(tiny_peft_model, "gsrm"):
        gsrm = _logits(tiny_peft_model)
    with use_adapter(tiny_peft_model, None):
        bare = _logits(tiny_peft_model)
    with torch.no_grad():
        base = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval())

    assert not torch.allclose(student, gsrm)
    assert not torch.allclose(student, bare)
    assert not torch.allclose(gsrm, bare)
    torch.testing.assert_close(bare, base)


def test_gsrm_unchanged_by_student_training(tiny_peft_model):
    model = tiny_peft_model
    gsrm_before = adapter_state_fingerprint(model, "gsrm")
    student_before = adapter_state_fingerprint(model, "default")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.tensor(PROMPT_IDS)
    for _ in range(2):
        loss = model(input_ids=ids, labels=ids).loss
        with use_adapter(model, "gsrm"):  # as the reward function does between steps
            _logits(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    assert adapter_state_fingerprint(model, "gsrm") == gsrm_before
    assert adapter_state_fingerprint(model, "default") != student_before
    assert all(p.grad is None for n, p in model.named_parameters() if ".gsrm." in n)


def test_add_frozen_adapter_from_disk(tiny_peft_model, tiny_model_dir, tiny_lora_config, tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    tiny_peft_model.save_pretrained(tmp_path, selected_adapters=["gsrm"])
    fresh = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_lora_config())
    flags = _grad_flags(fresh)

    add_frozen_adapter(fresh, "gsrm", tmp_path / "gsrm")

    assert fresh.active_adapter == "default"
    saved = adapter_state_fingerprint(tiny_peft_model, "gsrm")
    assert adapter_state_fingerprint(fresh, "gsrm") == saved
    new_flags = _grad_flags(fresh)
    assert {n: f for n, f in new_flags.items() if n in flags} == flags
    assert not any(f for n, f in new_flags.items() if ".gsrm." in n)


def test_add_frozen_adapter_refuses_other_target_modules(tiny_peft_model, tiny_lora_config):
    with pytest.raises(ValueError, match="same modules"):
        add_frozen_adapter(tiny_peft_model, "other", tiny_lora_config(target_modules=["q_proj"]))
    # target_modules None means "the student's"
    add_frozen_adapter(tiny_peft_model, "copy", tiny_lora_config(target_modules=None))
    configs = tiny_peft_model.peft_config
    assert configs["copy"].target_modules == configs["default"].target_modules


def test_fingerprint_rejects_unknown_adapter(tiny_peft_model):
    with pytest.raises(ValueError, match="no adapter"):
        adapter_state_fingerprint(tiny_peft_model, "missing")


# ---------------------------------------------------------------------------------------------
# Loading the student (rlkd_lite.models.loading)

class Loaded(Exception):
    """Stops load_student once it has asked Unsloth for the weights."""


@pytest.fixture
def unsloth_requests(monkeypatch):
    """The (name, load_in_4bit) that load_student asks Unsloth's loader for; the loader then
    raises Loaded. Only the Hub loader is mocked: the tests never touch the network."""
    from unsloth import FastLanguageModel

    requested = []

    def record_request(name, **kwargs):
        requested.append((name, kwargs["load_in_4bit"]))
        raise Loaded

    monkeypatch.setattr(FastLanguageModel, "from_pretrained", record_request)
    return requested


def load_unsloth_student(name: str, load_in_4bit: bool) -> None:
    from rlkd_lite.models.loading import LoraSettings, load_student

    load_student(name, backend="unsloth", max_seq_length=256, load_in_4bit=load_in_4bit,
                 lora=LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=("q_proj",)))


def test_unsloth_backend_loads_an_alias_in_the_requested_precision(unsloth_requests):
    """`load_in_4bit: false` must load the full-precision model, not Unsloth's 4-bit copy."""
    for load_in_4bit in (False, True):
        with pytest.raises(Loaded):
            load_unsloth_student("qwen2.5-1.5b", load_in_4bit)
    assert unsloth_requests == [("Qwen/Qwen2.5-1.5B-Instruct", False),
                                ("unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit", True)]


def test_a_pre_quantised_repo_is_refused_in_full_precision_before_any_download(
        unsloth_requests):
    """Its weights are 4-bit only: `load_in_4bit: false` would load it quantised, silently."""
    from rlkd_lite.errors import RlkdError

    repo = "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit"
    with pytest.raises(RlkdError) as error:
        load_unsloth_student(repo, load_in_4bit=False)
    assert str(error.value) == (f"{repo} is a pre-quantised model (its name ends in 4bit): it "
                                f"would load quantised although load_in_4bit is false. Name the "
                                f"full-precision model instead, or set load_in_4bit: true")
    assert unsloth_requests == []
    with pytest.raises(Loaded):  # in 4-bit it loads as before
        load_unsloth_student(repo, load_in_4bit=True)
    assert unsloth_requests == [(repo, True)]


def test_a_pre_quantised_folder_is_refused_in_full_precision(tiny_model_dir, tmp_path):
    """Told from its config.json, as transformers would quantise it by that config."""
    import json
    import shutil

    from rlkd_lite.errors import RlkdError
    from rlkd_lite.models.loading import LoraSettings, load_student

    folder = shutil.copytree(tiny_model_dir, tmp_path / "tiny-bnb-4bit")
    config = json.loads((folder / "config.json").read_text())
    # What a model saved after loading in 4-bit with bitsandbytes carries.
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True,
                                     "bnb_4bit_quant_type": "nf4"}
    (folder / "config.json").write_text(json.dumps(config))

    with pytest.raises(RlkdError) as error:
        load_student(str(folder), backend="hf", lora=LoraSettings(**STUDENT_LORA),
                     max_seq_length=256, load_in_4bit=False, gradient_checkpointing=False)
    assert str(error.value) == (f"{folder} is a pre-quantised model (its config.json has a "
                                f"quantization_config): it would load quantised although "
                                f"load_in_4bit is false. Name the full-precision model instead, "
                                f"or set load_in_4bit: true")


STUDENT_LORA = dict(rank=4, alpha=8, dropout=0.0,
                    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                    "up_proj", "down_proj"))


def _load_tiny_student(model_dir, init_adapter=None):
    from rlkd_lite.models.loading import LoraSettings, load_student

    model, _ = load_student(str(model_dir), backend="hf", lora=LoraSettings(**STUDENT_LORA),
                            max_seq_length=256, load_in_4bit=False, init_adapter=init_adapter,
                            gradient_checkpointing=False)
    return model


def _save_tiny_adapter(model_dir, out, lora_config):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora_config)
    model.save_pretrained(out)
    return model


def test_init_adapter_loads_a_matching_adapter(tiny_model_dir, tiny_lora_config, tmp_path):
    saved = _save_tiny_adapter(tiny_model_dir, tmp_path / "adapter", tiny_lora_config())

    student = _load_tiny_student(tiny_model_dir, init_adapter=str(tmp_path / "adapter"))

    assert (adapter_state_fingerprint(student, "default")
            == adapter_state_fingerprint(saved, "default"))


ALL_SEVEN = "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"


@pytest.mark.parametrize("overrides, differences", [
    ({"target_modules": ["q_proj", "v_proj"]},
     f"target_modules q_proj, v_proj (the student's: {ALL_SEVEN})"),
    ({"lora_alpha": 32}, "lora_alpha 32 (the student's: 8)"),
    ({"r": 8, "lora_alpha": 16}, "r 8 (the student's: 4), lora_alpha 16 (the student's: 8)"),
    ({"use_rslora": True}, "use_rslora True (the student's: False)"),
])
def test_init_adapter_refuses_other_lora_settings(tiny_model_dir, tiny_lora_config, tmp_path,
                                                  overrides, differences):
    from rlkd_lite.errors import RlkdError

    _save_tiny_adapter(tiny_model_dir, tmp_path / "adapter", tiny_lora_config(**overrides))
    config_file = tmp_path / "adapter" / "adapter_config.json"

    with pytest.raises(RlkdError) as error:
        _load_tiny_student(tiny_model_dir, init_adapter=str(tmp_path / "adapter"))
    assert str(error.value) == (f"{config_file}: the adapter's LoRA settings differ from the "
                                f"student's: {differences} (the student's come from the recipe: "
                                f"lora_rank, lora_alpha, lora_target_modules)")


def test_adapter_dir_without_an_adapter_or_checkpoints_says_where_it_looked(tmp_path):
    from rlkd_lite.errors import RlkdError
    from rlkd_lite.models.loading import adapter_dir

    (tmp_path / "checkpoints" / "checkpoint-3").mkdir(parents=True)  # cut off: nothing saved
    with pytest.raises(RlkdError) as error:
        adapter_dir(tmp_path)
    assert str(error.value) == (f"{tmp_path}: no LoRA adapter here (expected adapter_config.json "
                                f"in it or in {tmp_path / 'adapter'})")
