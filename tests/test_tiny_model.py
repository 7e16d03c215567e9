"""The tiny random Qwen2 that model tests run on: loads offline, chats like Qwen2.5."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow


def test_tiny_model_loads_and_generates_offline(tiny_model_dir, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tiny_tokenizer)
    assert (tiny_model_dir / "model.safetensors").is_file()

    prompt = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    assert "<think>" not in prompt  # Qwen2.5's template, not the shipped Qwen3 one

    assert tiny_tokenizer.pad_token == "<|endoftext|>" and tiny_tokenizer.eos_token == "<|im_end|>"
    ids = tiny_tokenizer(prompt, return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape == (1, ids["input_ids"].shape[1] + 4)  # random weights never stop early
    end_tokens = {tiny_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    assert set(model.generation_config.eos_token_id) == end_tokens


def test_shape_parameters(tmp_path):
    from transformers import AutoConfig

    from rlkd_lite.models.tiny import build_tiny_qwen2

    out = build_tiny_qwen2(tmp_path, hidden=32, layers=1, intermediate=48, heads=2, kv_heads=1,
                           vocab_size=151936, tie_embeddings=False, rope_theta=10_000.0,
                           dtype="bfloat16")
    config = AutoConfig.from_pretrained(out)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (32, 1, 48)
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 1)
    assert config.vocab_size == 151936 and not config.tie_word_embeddings
    assert config.rope_parameters["rope_theta"] == 10_000.0
    assert config.dtype == torch.bfloat16


def test_a_bpe_tokenizer_decodes_without_the_cleanup_warning(capfd):
    """SmolLM2's tokenizer config asks for the WordPiece clean-up, which transformers ignores
    for BPE with a warning on the first decode; the loader says False, as transformers does."""
    from rlkd_lite.models.loading import load_inference_model

    _, tokenizer = load_inference_model("smollm2-135m")
    ids = tokenizer("It costs $3 , not 4 .", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "It costs $3 , not 4 ."  # spaces before punctuation kept
    assert tokenizer.clean_up_tokenization_spaces is False
    assert "clean_up_tokenization_spaces" not in capfd.readouterr().err
