"""A model that cannot be fetched is one clean `error:` line, and loading a model prints none
of the dependencies' import noise. Nothing here touches the network: conftest sets
HF_HUB_OFFLINE before huggingface_hub is imported, and the tests that name a Hub model check
that it took (`offline`)."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rlkd_lite.cli import app
from rlkd_lite.errors import RlkdError

torch = pytest.importorskip("torch")


@pytest.fixture
def offline(monkeypatch):
    """The Hub client reads HF_HUB_OFFLINE once, on import: make sure it read it as set."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub

    assert huggingface_hub.is_offline_mode()


def test_a_hub_alias_that_is_not_cached_is_an_rlkd_error(offline):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from rlkd_lite.models.loading import load_inference_model

    with pytest.raises(RlkdError) as error:
        load_inference_model("qwen2.5-0.5b")
    assert str(error.value) == (
        "could not load model Qwen/Qwen2.5-0.5B-Instruct (alias qwen2.5-0.5b) from the Hugging "
        "Face Hub: it is not in the local cache and HF_HUB_OFFLINE is set. To fix: unset "
        "HF_HUB_OFFLINE where huggingface.co is reachable, download it beforehand (hf download "
        "Qwen/Qwen2.5-0.5B-Instruct) so that it loads from the cache, or give a local model "
        "folder instead")
    assert isinstance(error.value.__cause__, LocalEntryNotFoundError)


@pytest.mark.slow
def test_both_student_backends_report_a_missing_hub_model(offline):
    """Unsloth reaches the Hub through its own loader, which wraps the error differently."""
    from rlkd_lite.models.loading import LoraSettings, load_student

    lora = LoraSettings(rank=4, alpha=8, dropout=0.0, target_modules=("q_proj",))
    for backend in ("hf", "unsloth"):
        with pytest.raises(RlkdError, match=r"^could not load model Qwen/Qwen2\.5-0\.5B-Instruct "
                                            r"\(alias qwen2\.5-0\.5b\) from the Hugging Face Hub"):
            load_student("qwen2.5-0.5b", backend=backend, lora=lora, max_seq_length=256,
                         load_in_4bit=False)


def test_a_local_folder_missing_its_weights_names_the_folder(tiny_model_dir, tmp_path):
    import re
    import shutil

    from rlkd_lite.models.loading import load_inference_model

    folder = shutil.copytree(tiny_model_dir, tmp_path / "no-weights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(RlkdError, match=f"^could not load the model in {re.escape(str(folder))}: "):
        load_inference_model(str(folder))


def test_only_errors_of_fetching_files_become_rlkd_errors(offline):
    """Anything else while loading is a bug whose traceback is wanted. Unsloth reports a Hub
    error as a RuntimeError raised from it."""
    from rlkd_lite.models.loading import _model_files
    from rlkd_lite.models.registry import resolve_model

    resolved = resolve_model("qwen2.5-0.5b", backend="hf")
    bug = ValueError("a bug")
    with pytest.raises(ValueError) as error, _model_files(resolved):
        raise bug
    assert error.value is bug
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(RlkdError, match="HF_HUB_OFFLINE is set") as error, _model_files(resolved):
        try:
            try:
                raise LocalEntryNotFoundError("not in the cache")
            except LocalEntryNotFoundError as hub:
                raise OSError("We couldn't connect to 'https://huggingface.co' to load the "
                              "files, and couldn't find them in the cached files.") from hub
        except OSError as transformers_error:
            raise RuntimeError("Unsloth: Failed to load model") from transformers_error
    assert isinstance(error.value.__cause__, RuntimeError)
    # Other OSErrors are no Hub matter: their tracebacks are wanted, not network advice.
    for other in (OSError(28, "No space left on device"),
                  OSError("libcudart.so.12: cannot open shared object file")):
        with pytest.raises(OSError) as error, _model_files(resolved):
            raise other
        assert error.value is other


def _hub_error(kind, status: int, url: str):
    """What the Hub client raises for a response this machine cannot get (it has no network)."""
    import httpx

    response = httpx.Response(status, request=httpx.Request("HEAD", url))
    return kind(f"{status} Client Error.", response=response)


def test_a_gated_or_unknown_repo_says_what_to_do():
    """As transformers raises them: an OSError of its own, from the Hub client's error."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from rlkd_lite.models.loading import _model_files
    from rlkd_lite.models.registry import resolve_model

    url = "https://huggingface.co/org/model/resolve/main/config.json"
    resolved = resolve_model("org/model", backend="hf")
    with pytest.raises(RlkdError) as error, _model_files(resolved):
        raise OSError("You are trying to access a gated repo.") from _hub_error(
            GatedRepoError, 401, url)
    assert str(error.value) == (
        "could not load model org/model from the Hugging Face Hub: access to it is gated. To "
        "fix: request access at https://huggingface.co/org/model, then log in: hf auth login, "
        "or give a local model folder instead")
    with pytest.raises(RlkdError) as error, _model_files(resolved):
        raise OSError("org/model is not a local folder") from _hub_error(
            RepositoryNotFoundError, 404, url)
    assert str(error.value).startswith(
        "could not load model org/model from the Hugging Face Hub: there is no such repository "
        "(https://huggingface.co/org/model). To fix: check the name; if the repository is "
        "private, log in: hf auth login")


def test_eval_of_a_missing_hub_model_exits_with_one_line(offline, tmp_path):
    result = CliRunner().invoke(app, ["eval", "--model", "qwen2.5-0.5b", "--data", "synthetic",
                                      "--limit", "2", "--output", str(tmp_path / "eval.json")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: could not load model Qwen/Qwen2.5-0.5B-Instruct ")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.slow
def test_eval_prints_no_dependency_noise(tmp_path):
    """torchao's kernels built for other GPUs, its pytree enum registrations, bitsandbytes
    without `kernels`: logged once per process as they are imported, so in a fresh one."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "rlkd_lite", "eval", "--model", "smollm2-135m", "--data",
         "synthetic", "--limit", "1", "--max-new-tokens", "4", "--output",
         str(tmp_path / "eval.json")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    noise = ("Failed to load", "is an Enum subclass", "kernels-community")
    assert [line for line in result.stderr.splitlines() if any(n in line for n in noise)] == []
