"""Recipe and `--set` values are checked before any model loads, each error one line naming
where the value came from (recipe file and line, `--set` pair or flag); the paths a run's
config.yaml stores work from any directory; damaged adapter files are named, not a traceback."""
from __future__ import annotations

import pytest
import yaml
from safetensors.numpy import save_file
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.errors import RlkdError

runner = CliRunner()


def run_cli(*args: str):
    return runner.invoke(app, list(args))


def refused(*args: str) -> str:
    """The one-line error of a command that must fail cleanly."""
    result = run_cli(*args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def train_dry_run(*args: str) -> dict:
    result = run_cli("train", "--recipe", "tiny-cpu", *args, "--dry-run")
    assert result.exit_code == 0, result.output
    return yaml.safe_load(result.output)


def recipe(tmp_path, text: str, name: str = "recipe.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- --set values that are no YAML ----------------------------------------------------------

@pytest.mark.parametrize("command, pair", [
    ("train", "max_steps=[1"), ("train", 'system_prompt="x'),
    ("train", "reward_weights={accuracy: "), ("gsrm train", "held_out=[1")])
def test_a_set_value_that_is_no_yaml_names_the_pair(command, pair):
    recipe = "tiny-cpu" if command == "train" else "gsrm-tiny-cpu"
    assert refused(*command.split(), "--recipe", recipe, "--set", pair, "--dry-run").startswith(
        f"error: --set {pair!r}: not valid YAML: ")


def test_bench_reads_set_values_as_train_does(tmp_path):
    assert refused("bench", "--recipe", "bench-tiny", "--shape", "tiny", "--workdir",
                   str(tmp_path), "--set", "max_steps=[1").startswith(
        "error: --set 'max_steps=[1': not valid YAML: ")


# --- ranges -------------------------------------------------------------------------------

@pytest.mark.parametrize("pair, message", [
    ("learning_rate=-1", "learning_rate must be above 0, not -1.0"),
    ("learning_rate=0", "learning_rate must be above 0, not 0.0"),
    ("learning_rate=.nan", "learning_rate must be a finite number, not nan"),
    ("learning_rate=.inf", "learning_rate must be a finite number, not inf"),
    ("learning_rate=nan", "learning_rate must be a finite number, not nan"),
    ("lora_dropout=3", "lora_dropout must be in [0, 1), not 3.0"),
    ("lora_dropout=1", "lora_dropout must be in [0, 1), not 1.0"),
    ("beta=-1", "beta must be at least 0 (0: no reference model), not -1.0"),
    ("weight_decay=-5", "weight_decay must be at least 0, not -5.0"),
    ("max_grad_norm=-1", "max_grad_norm must be at least 0 (0: no clipping), not -1.0"),
    ("num_train_epochs=0", "num_train_epochs must be above 0, not 0.0"),
    ("temperature=.inf", "temperature must be a finite number, not inf"),
    ("warmup_ratio=.nan", "warmup_ratio must be a finite number, not nan"),
    ("reward_weights.accuracy=-5", "reward_weights.accuracy must be at least 0, not -5"),
    ("reward_weights.format=.inf", "reward_weights.format must be a finite number, not inf"),
    ("reward_weights={accuracy: -5, structure: 1}",
     "reward_weights.accuracy must be at least 0, not -5"),
    ("method=distill", "method must be one of rlkd, grpo, sft, not 'distill'"),
    ("reward_weights.speed=1",
     "reward_weights: unknown reward(s) ['speed']; known: accuracy, format, tag_count, structure"),
])
def test_out_of_range_set_values_are_refused_naming_the_pair(pair, message):
    assert refused("train", "--recipe", "tiny-cpu", "--set", pair, "--dry-run") == (
        f"error: --set {pair!r}: {message}")


@pytest.mark.parametrize("pair", ["held_out=0", "held_out=1", "held_out=.nan"])
def test_held_out_is_a_share(pair, tmp_path):
    (tmp_path / "labels.jsonl").write_text("")
    assert f"error: --set {pair!r}: held_out must " in refused(
        "gsrm", "train", "--recipe", "gsrm-tiny-cpu", "--examples", str(tmp_path / "labels.jsonl"),
        "--set", pair, "--dry-run")


def test_the_edges_the_libraries_accept_on_purpose_pass():
    shown = train_dry_run("--set", "lora_dropout=0", "--set", "beta=0", "--set", "max_grad_norm=0",
                          "--set", "weight_decay=0", "--set", "reward_weights.format=0")
    assert (shown["lora_dropout"], shown["beta"], shown["max_grad_norm"]) == (0, 0, 0)


# --- where a bad value came from ----------------------------------------------------------

def test_a_range_error_names_the_recipe_file_and_line(tmp_path):
    path = recipe(tmp_path, "extends: tiny-cpu\nmax_steps: -5\n")
    assert refused("train", "--recipe", path, "--dry-run") == (
        f"error: {path}:2: max_steps must be at least 1, not -5")


def test_choice_and_reward_errors_name_their_line_through_extends(tmp_path):
    parent = recipe(tmp_path, "extends: tiny-cpu\nreward_weights:\n  accuracy: 1\n"
                              "  structure: -2\nmethod: distill\n", "parent.yaml")
    assert refused("train", "--recipe", parent, "--dry-run") == (
        f"error: {parent}:5: method must be one of rlkd, grpo, sft, not 'distill'")
    child = recipe(tmp_path, "extends: parent.yaml\nmethod: rlkd\n", "child.yaml")
    assert refused("train", "--recipe", child, "--dry-run") == (
        f"error: {parent}:4: reward_weights.structure must be at least 0, not -2")
    # A mapping given again replaces the parent's: its lines no longer count.
    child = recipe(tmp_path, "extends: parent.yaml\nmethod: rlkd\n"
                             "reward_weights: {accuracy: 1, speed: 2, structure: 1}\n",
                   "child.yaml")
    assert refused("train", "--recipe", child, "--dry-run") == (
        f"error: {child}:3: reward_weights: unknown reward(s) ['speed']; known: accuracy, "
        f"format, tag_count, structure")


def test_a_flag_is_named_where_it_gave_the_value():
    assert refused("train", "--recipe", "tiny-cpu", "--set", "method=grpo", "--method", "distill",
                   "--dry-run") == (
        "error: --method: method must be one of rlkd, grpo, sft, not 'distill'")
    assert train_dry_run("--set", "max_steps=-1", "--max-steps", "3")["max_steps"] == 3


def test_a_key_given_twice_names_both_lines(tmp_path):
    path = recipe(tmp_path, "extends: tiny-cpu\nmax_steps: 4\nmax_steps: 100\n")
    assert refused("train", "--recipe", path, "--dry-run") == (
        f"error: {path}:3: field 'max_steps': given twice, on lines 2 and 3")
    path = recipe(tmp_path, "extends: tiny-cpu\nreward_weights:\n  structure: 1\n  structure: 2\n")
    assert refused("train", "--recipe", path, "--dry-run") == (
        f"error: {path}:4: field 'reward_weights.structure': given twice, on lines 3 and 4")


def test_an_unknown_parent_recipe_names_the_extends_line(tmp_path):
    path = recipe(tmp_path, "# a typo\nextends: tiny-cpuu\n")
    assert refused("train", "--recipe", path, "--dry-run").startswith(
        f"error: {path}:2: field 'extends': no recipe 'tiny-cpuu' (not a file; known recipes: ")


# --- paths in config.yaml -----------------------------------------------------------------

def test_paths_are_stored_absolute_and_names_as_given(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    (here / "sft" / "adapter").mkdir(parents=True)
    (here / "sft" / "adapter" / "adapter_config.json").write_text("{}")
    save_file({}, str(here / "sft" / "adapter" / "adapter_model.safetensors"))  # no tensors
    (here / "probs.jsonl").write_text("")
    (here / "traces.jsonl").write_text("")
    (here / "synthetic").write_text("")  # a name wins over a file of that name
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    shown = train_dry_run("--data", "probs.jsonl", "--teacher", "./traces.jsonl",
                          "--init-adapter", "sft", "--output-dir", "runs/x")
    assert {k: shown[k] for k in ("data", "teacher", "init_adapter", "output_dir", "model")} == {
        "data": str(here / "probs.jsonl"), "teacher": str(here / "traces.jsonl"),
        "init_adapter": str(here / "sft"), "output_dir": str(here / "runs" / "x"),
        "model": "smollm2-135m"}
    assert train_dry_run("--data", "synthetic")["data"] == "synthetic"
    # The resolved configuration, as config.yaml stores it, is a recipe from anywhere.
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(shown))
    monkeypatch.chdir(elsewhere)
    result = run_cli("train", "--recipe", str(config), "--dry-run")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == shown


def test_gsrm_examples_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "labels.jsonl").write_text("")
    result = run_cli("gsrm", "train", "--recipe", "gsrm-tiny-cpu", "--examples", "labels.jsonl",
                     "--dry-run")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["examples"] == str(tmp_path / "labels.jsonl")


# --- input files exist --------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--data", "--teacher"])
def test_dry_run_refuses_a_missing_or_directory_input(flag, tmp_path):
    missing = tmp_path / "missing.jsonl"
    assert refused("train", "--recipe", "tiny-cpu", flag, str(missing), "--dry-run") == (
        f"error: field '{flag[2:]}': {missing}: no such file")
    folder = tmp_path / "traces.jsonl"
    folder.mkdir()
    assert refused("train", "--recipe", "tiny-cpu", flag, str(folder), "--dry-run") == (
        f"error: field '{flag[2:]}': {folder}: a directory, not a file")


def test_data_that_is_neither_a_built_in_name_nor_a_jsonl_file_is_refused(tmp_path):
    (tmp_path / "p.json").write_text("{}\n")
    expected = ("expected one of: synthetic, gsm8k, gsm8k-subset, or a path to a .jsonl file")
    for data in ("gsm8k-test", str(tmp_path / "p.json")):  # a typo; a file the run cannot read
        assert refused("train", "--recipe", "tiny-cpu", "--data", data, "--dry-run") == (
            f"error: unknown data '{data}'; {expected}")


def test_choices_spell_none_as_yaml_does():
    assert "teacher_decomposer must be one of null, gsrm, rules, tagged" in refused(
        "train", "--recipe", "tiny-cpu", "--set", "teacher_decomposer=foo", "--dry-run")


def test_gsrm_dry_run_refuses_missing_examples(tmp_path):
    gsrm = ("gsrm", "train", "--recipe", "gsrm-tiny-cpu")
    assert refused(*gsrm, "--dry-run") == (
        "error: no labelled examples: pass --examples FILE (made by `rlkd-lite gsrm label`)")
    assert refused(*gsrm, "--examples", str(tmp_path / "labels.jsonl"), "--dry-run") == (
        f"error: field 'examples': {tmp_path / 'labels.jsonl'}: no such file")
    assert refused(*gsrm, "--examples", str(tmp_path), "--dry-run") == (
        f"error: field 'examples': {tmp_path}: a directory, not a file")


# --- damaged adapter files ----------------------------------------------------------------

def cut_short(path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def saved_adapter(tiny_peft_model, tmp_path):
    """A run directory whose adapter/ holds the tiny model's student adapter."""
    run = tmp_path / "run"
    tiny_peft_model.save_pretrained(run / "adapter", selected_adapters=["default"])
    return run


@pytest.mark.parametrize("damaged", ["adapter_model.safetensors", "adapter_config.json"])
def test_a_damaged_adapter_is_named_before_the_model_loads(saved_adapter, damaged):
    cut_short(saved_adapter / "adapter" / damaged)
    for flag in ("--init-adapter", "--gsrm-adapter"):
        assert refused("train", "--recipe", "tiny-cpu", flag, str(saved_adapter),
                       "--dry-run").startswith(f"error: {saved_adapter / 'adapter' / damaged}: ")
    assert refused("eval", "--adapter", str(saved_adapter)).startswith(
        f"error: {saved_adapter / 'adapter' / damaged}: ")


@pytest.mark.parametrize("pickled", [False, True])
def test_an_adapter_without_safetensors_weights_is_named_before_the_model_loads(
        saved_adapter, tiny_peft_model, pickled):
    """A copy cut short or a folder made by hand has no weights; PEFT's torch-format .bin is
    refused (PEFT would fall back to it in place of the missing safetensors)."""
    adapter = saved_adapter / "adapter"
    (adapter / "adapter_model.safetensors").unlink()
    if pickled:
        tiny_peft_model.save_pretrained(adapter, selected_adapters=["default"],
                                        safe_serialization=False)
        expected = (f"error: {adapter / 'adapter_model.bin'}: adapter weights in torch's "
                    f"pickle format; rlkd-lite loads weights from safetensors only "
                    f"(adapter_model.safetensors)")
    else:
        expected = (f"error: {adapter / 'adapter_model.safetensors'}: no such file; the "
                    f"adapter's weights belong there, beside its adapter_config.json")
    for flag in ("--init-adapter", "--gsrm-adapter"):
        assert refused("train", "--recipe", "tiny-cpu", flag, str(saved_adapter),
                       "--dry-run").startswith(expected)
    assert refused("eval", "--adapter", str(saved_adapter)).startswith(expected)


def test_add_frozen_adapter_names_damaged_weights(saved_adapter, tiny_peft_model):
    from rlkd_lite.models.adapters import add_frozen_adapter

    weights = saved_adapter / "adapter" / "adapter_model.safetensors"
    cut_short(weights)
    with pytest.raises(RlkdError, match=f"^{weights}: not readable adapter weights"):
        add_frozen_adapter(tiny_peft_model, "other", saved_adapter / "adapter")


def test_resuming_from_a_damaged_checkpoint_names_it_before_the_model_loads(
        saved_adapter, tiny_model_dir, tmp_path):
    run = tmp_path / "resumed"
    flags = ("--model", str(tiny_model_dir), "--output-dir", str(run),
             "--set", "lora_rank=4", "--set", "lora_alpha=8")  # the tiny adapter's shape
    checkpoint = run / "checkpoints" / "checkpoint-2"
    checkpoint.parent.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(train_dry_run(*flags)))
    (saved_adapter / "adapter").rename(checkpoint)  # a checkpoint holds the student adapter
    (checkpoint / "trainer_state.json").write_text("{}")
    cut_short(checkpoint / "adapter_model.safetensors")
    assert refused("train", "--recipe", "tiny-cpu", *flags, "--resume").startswith(
        f"error: {checkpoint / 'adapter_model.safetensors'}: not readable adapter weights")


@pytest.mark.parametrize("damaged, problem", [
    ("adapter_config.json", "not a readable adapter config"),
    ("adapter_model.safetensors", "not readable adapter weights")])
def test_resuming_names_a_damaged_gsrm_adapter_of_the_checkpoint_before_the_model_loads(
        tiny_peft_model, tiny_model_dir, tmp_path, monkeypatch, damaged, problem):
    """The Trainer loads a checkpoint's gsrm sub-adapter again on resume, after the model."""
    import rlkd_lite.train.run

    def load_config_model(*args, **kwargs):
        raise AssertionError("the model loaded before the damaged adapter was named")

    monkeypatch.setattr(rlkd_lite.train.run, "load_config_model", load_config_model)
    run = tmp_path / "resumed"
    flags = ("--model", str(tiny_model_dir), "--output-dir", str(run),
             "--set", "lora_rank=4", "--set", "lora_alpha=8")  # the tiny adapter's shape
    checkpoint = run / "checkpoints" / "checkpoint-2"
    checkpoint.parent.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(train_dry_run(*flags)))
    tiny_peft_model.save_pretrained(checkpoint)  # as the Trainer saves: gsrm in gsrm/
    (checkpoint / "trainer_state.json").write_text("{}")
    assert (checkpoint / "gsrm" / damaged).is_file()
    cut_short(checkpoint / "gsrm" / damaged)
    assert refused("train", "--recipe", "tiny-cpu", *flags, "--resume").startswith(
        f"error: {checkpoint / 'gsrm' / damaged}: {problem} (")
