"""`rlkd-lite train` and `gsrm train` refuse, before any model loads, what the run would refuse:
`--dry-run` checks the same as the run. No model is trained here."""
from __future__ import annotations

import pytest
import yaml
from safetensors.numpy import save_file
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.errors import InputError, RlkdError
from rlkd_lite.train.config import load_config

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, list(args))


def dry_run(*args: str) -> dict:
    result = run_cli("train", "--recipe", "tiny-cpu", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def test_a_dotted_set_changes_one_entry_of_a_mapping():
    recipe = load_config("tiny-cpu").reward_weights
    shown = dry_run("--set", "reward_weights.structure=20", "--set", "reward_weights.accuracy=2")
    assert shown["reward_weights"] == {**recipe, "structure": 20, "accuracy": 2}
    # In the order given: a whole mapping replaces, a later entry goes into it.
    shown = dry_run("--set", "reward_weights={accuracy: 1, structure: 3}",
                    "--set", "reward_weights.structure=5")
    assert shown["reward_weights"] == {"accuracy": 1, "structure": 5}


def test_rlkd_without_a_structure_weight_is_refused_and_points_to_grpo():
    result = run_cli("train", "--recipe", "tiny-cpu", "--set", "reward_weights={accuracy: 2}",
                     "--dry-run")
    assert result.exit_code == 1
    assert "positive structure weight" in result.output
    assert "use method grpo" in result.output
    with pytest.raises(RlkdError, match="positive structure weight"):
        load_config("tiny-cpu", {"reward_weights.structure": 0})
    shown = dry_run("--method", "grpo", "--set", "reward_weights={accuracy: 2}")
    assert shown["reward_weights"] == {"accuracy": 2}


@pytest.mark.parametrize("pair", ["learning_rate.x=1", "reward_weights.=1", "nonsense.x=1"])
def test_a_dotted_set_needs_a_mapping_field(pair):
    result = run_cli("train", "--recipe", "tiny-cpu", "--set", pair, "--dry-run")
    assert result.exit_code == 1
    assert "FIELD.KEY=VALUE for one entry of a mapping field (reward_weights)" in (
        " ".join(result.output.split()))


def test_a_dotted_override_into_a_recipe_value_that_is_no_mapping_names_the_recipe(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("extends: tiny-cpu\nreward_weights: 15\n")
    with pytest.raises(InputError, match=r"bad.yaml:2: field 'reward_weights': expected a "
                                         r"mapping"):
        load_config(str(recipe), {"reward_weights.structure": 15})


def test_set_help_shows_the_dotted_form():
    result = run_cli("train", "--help")
    assert "FIELD.KEY=VALUE sets one entry of a mapping such as reward_weights" in (
        " ".join(result.output.replace("│", " ").split()))


@pytest.mark.parametrize("flag", ["--init-adapter", "--gsrm-adapter"])
def test_an_adapter_path_without_an_adapter_is_refused_before_the_run_starts(flag, tmp_path):
    from rlkd_lite.models.loading import adapter_dir

    missing = tmp_path / "nonexistent"
    with pytest.raises(RlkdError) as expected:
        adapter_dir(missing)
    for extra in (["--dry-run"], []):
        result = run_cli("train", "--recipe", "tiny-cpu", flag, str(missing),
                         "--output-dir", str(tmp_path / "run"), *extra)
        assert result.exit_code == 1, result.output
        assert str(expected.value) in " ".join(result.output.split())
        assert not (tmp_path / "run").exists()
    # A run directory whose adapter/ holds one passes.
    (tmp_path / "sft" / "adapter").mkdir(parents=True)
    (tmp_path / "sft" / "adapter" / "adapter_config.json").write_text("{}")
    save_file({}, str(tmp_path / "sft" / "adapter" / "adapter_model.safetensors"))  # no tensors
    assert dry_run(flag, str(tmp_path / "sft"))[flag[2:].replace("-", "_")] == str(
        tmp_path / "sft")


@pytest.mark.parametrize("flag, value", [("--subset", "0"), ("--subset", "-1"),
                                         ("--max-steps", "0"), ("--seed", "-1")])
def test_out_of_range_flags_are_refused_by_the_cli(flag, value):
    result = run_cli("train", "--recipe", "tiny-cpu", flag, value, "--dry-run")
    assert result.exit_code == 2
    assert flag in result.output


@pytest.mark.parametrize("value", ["0", "-1"])
def test_dry_run_refuses_a_subset_the_run_would_refuse(value):
    result = run_cli("train", "--recipe", "tiny-cpu", "--set", f"subset={value}", "--dry-run")
    assert result.exit_code == 1
    assert "subset must be at least 1" in result.output


@pytest.mark.parametrize("student, gsrm", [("tiny-cpu", "gsrm-tiny-cpu"),
                                           ("rlkd-qwen2.5-1.5b-gsm8k", "gsrm-qwen2.5-1.5b")])
def test_gsrm_train_with_a_student_recipe_names_a_gsrm_recipe(student, gsrm, tmp_path):
    result = run_cli("gsrm", "train", "--recipe", student, "--examples",
                     str(tmp_path / "labels.jsonl"), "--dry-run")
    assert result.exit_code == 1
    assert (f"{student} is a training recipe for the student, not a gsrm recipe; use e.g. "
            f"{gsrm} (recipes/gsrm-*.yaml)") in " ".join(result.output.split())
    assert "held_out" not in result.output


def test_an_empty_or_null_set_clears_an_optional_field_and_is_refused_for_others():
    def teacher_decomposer(*args: str):
        result = run_cli("train", "--recipe", "bench-tiny", *args, "--dry-run")
        assert result.exit_code == 0, result.output
        return yaml.safe_load(result.output)["teacher_decomposer"]

    assert teacher_decomposer() == "rules"  # the bench recipe's
    for value in ("null", ""):
        assert teacher_decomposer("--set", f"teacher_decomposer={value}") is None
    result = run_cli("train", "--recipe", "tiny-cpu", "--set", "model=", "--dry-run")
    assert result.exit_code == 1
    assert "field 'model': expected str, got None" in result.output, result.output


def test_a_student_recipe_with_gsrm_fields_in_set_is_a_gsrm_recipe(tmp_path):
    (tmp_path / "labels.jsonl").write_text("")  # the dry run checks that it exists
    result = run_cli("gsrm", "train", "--recipe", "tiny-cpu", "--examples",
                     str(tmp_path / "labels.jsonl"), "--set", "held_out=0.1", "--dry-run")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["held_out"] == 0.1


def test_gsrm_train_does_not_ask_for_the_gsrm_adapter_it_is_to_make(tmp_path):
    """A student recipe naming the gsrm run's output as its gsrm_adapter, and the gsrm recipe
    extending it: the adapter does not exist until gsrm train has made it."""
    gsrm_run = tmp_path / "gsrm-run"
    (tmp_path / "student.yaml").write_text(f"extends: tiny-cpu\ngsrm_adapter: {gsrm_run}\n")
    (tmp_path / "gsrm.yaml").write_text(f"extends: {tmp_path / 'student.yaml'}\n"
                                        f"output_dir: {gsrm_run}\nheld_out: 0.2\n")
    (tmp_path / "labels.jsonl").write_text("")  # the dry run checks that it exists
    result = run_cli("gsrm", "train", "--recipe", str(tmp_path / "gsrm.yaml"), "--examples",
                     str(tmp_path / "labels.jsonl"), "--dry-run")
    assert result.exit_code == 0, result.output
    result = run_cli("train", "--recipe", str(tmp_path / "student.yaml"), "--dry-run")
    assert result.exit_code == 1 and "no LoRA adapter here" in result.output  # the student needs it


def test_dry_run_refuses_a_pre_quantised_model_in_full_precision_and_a_negative_seed():
    result = run_cli("train", "--recipe", "tiny-cpu", "--model",
                     "unsloth/Qwen2.5-1.5B-Instruct-bnb-4bit", "--set", "load_in_4bit=false",
                     "--dry-run")
    assert result.exit_code == 1 and "is a pre-quantised model" in result.output, result.output
    for seed in (-1, 2**32):
        result = run_cli("train", "--recipe", "tiny-cpu", "--set", f"seed={seed}", "--dry-run")
        assert result.exit_code == 1 and f"seed must be in [0, 2**32), not {seed}" in result.output
