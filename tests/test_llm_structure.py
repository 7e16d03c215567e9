"""The model-backed judge and decomposer on the tiny random Qwen2.

Its outputs are garbage, so these tests check mechanics: batching, order, one forward pass per
judge batch, generation limits, adapter switching without side effects.
"""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from rlkd_lite.models.adapters import add_frozen_adapter, adapter_state_fingerprint  # noqa: E402
from rlkd_lite.structure.decomposers import DecomposeInput  # noqa: E402
from rlkd_lite.structure.judges import JudgePair  # noqa: E402
from rlkd_lite.structure.llm import (  # noqa: E402
    DECOMPOSE_EXAMPLES,
    GSRMDecomposer,
    LLMJudge,
    _StepLimit,
    without_partial_tag,
    chat_token_ids,
    cut_off_rows,
    stop_token_ids,
    decomposition_messages,
)
from rlkd_lite.structure.steps import Step, parse_steps, render_steps  # noqa: E402

pytestmark = pytest.mark.slow

PAIRS = [
    JudgePair("problem", "How many muffins are 3/4 of 24?", "What is three quarters of 24?"),
    JudgePair("answer", "18", "18 muffins"),
    JudgePair("problem", "First find the weekday distance.", "Start with the weekend."),
    JudgePair("answer", "25 km", "24"),
    JudgePair("problem", "How far does Tom walk in a week, counting every day of it?", "x"),
    JudgePair("answer", "", "4"),
    JudgePair("problem", "Next the gift comes out of what remains.", "The gift is subtracted."),
]
ITEMS = [
    DecomposeInput("What is 2 + 3?", "2 + 3 = 5. The answer is 5."),
    DecomposeInput("Ann has 4 apples and buys 6 more. How many now?", "4 + 6 = 10 apples."),
    DecomposeInput("Half of 30?", "30 / 2 = 15."),
]


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture
def forward_calls(tiny_model):
    """The list that gets one entry per forward pass of `tiny_model` during the test."""
    calls = []
    hook = tiny_model.register_forward_hook(lambda module, args, output: calls.append(1))
    yield calls
    hook.remove()


def _adapter_state(model):
    return (model.active_adapter, model.training,
            {n: p.requires_grad for n, p in model.named_parameters()},
            adapter_state_fingerprint(model, "default"))


# --- judge -----------------------------------------------------------------------------------

def test_judge_scores_pairs_in_order_one_forward_per_batch(tiny_model, tiny_tokenizer,
                                                            forward_calls):
    judge = LLMJudge(tiny_model, tiny_tokenizer, batch_size=3)

    scores = judge.scores(PAIRS)
    assert len(forward_calls) == math.ceil(len(PAIRS) / 3)
    assert len(scores) == len(PAIRS) and all(0.0 <= s <= 1.0 for s in scores)
    assert judge(PAIRS) == [s > 0.5 for s in scores]
    assert judge([]) == [] and judge.scores([]) == []

    reversed_scores = judge.scores(PAIRS[::-1])
    assert reversed_scores == pytest.approx(scores[::-1], abs=1e-5)


def test_judge_batching_does_not_change_scores(tiny_model, tiny_tokenizer):
    one_by_one = LLMJudge(tiny_model, tiny_tokenizer, batch_size=1).scores(PAIRS)
    all_at_once = LLMJudge(tiny_model, tiny_tokenizer, batch_size=64).scores(PAIRS)
    assert all_at_once == pytest.approx(one_by_one, abs=1e-5)


def test_judge_reads_single_token_yes_and_no(tiny_tokenizer, tiny_model):
    judge = LLMJudge(tiny_model, tiny_tokenizer)
    assert len(judge.yes_ids) == 4 and len(judge.no_ids) == 4
    assert {tiny_tokenizer.decode([i]).strip().lower() for i in judge.yes_ids} == {"yes"}
    assert {tiny_tokenizer.decode([i]).strip().lower() for i in judge.no_ids} == {"no"}


@pytest.fixture
def student_with_saved_gsrm(tiny_peft_model, tiny_model_dir, tiny_lora_config, tmp_path):
    """A student whose gsrm adapter was saved to disk and loaded back by name."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    tiny_peft_model.save_pretrained(tmp_path, selected_adapters=["gsrm"])
    student = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                             tiny_lora_config())
    add_frozen_adapter(student, "gsrm", tmp_path / "gsrm")
    student.train()
    return student


def test_judge_with_gsrm_adapter_leaves_student_untouched(student_with_saved_gsrm, tiny_tokenizer):
    model = student_with_saved_gsrm
    before = _adapter_state(model)

    with_gsrm = LLMJudge(model, tiny_tokenizer, adapter="gsrm").scores(PAIRS)
    bare = LLMJudge(model, tiny_tokenizer, adapter=None).scores(PAIRS)

    assert with_gsrm != pytest.approx(bare, abs=1e-4)
    assert _adapter_state(model) == before


# --- decomposer ------------------------------------------------------------------------------

def test_decomposer_returns_steps_per_item_in_order(tiny_model, tiny_tokenizer):
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=2, max_new_tokens=8)
    results = decomposer(ITEMS)
    assert len(results) == len(ITEMS)
    assert all(isinstance(steps, list) and all(isinstance(s, Step) for s in steps)
               for steps in results)
    assert decomposer([]) == []

    texts = decomposer.completions(ITEMS)
    assert decomposer.completions(ITEMS[::-1]) == texts[::-1]
    one_by_one = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=1, max_new_tokens=8)
    assert one_by_one.completions(ITEMS) == texts


@pytest.fixture
def new_token_counts(tiny_model, monkeypatch):
    """The list that gets the number of new tokens of each `tiny_model.generate` call."""
    counts = []
    generate = tiny_model.generate

    def spying_generate(*args, **kwargs):
        output = generate(*args, **kwargs)
        counts.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    monkeypatch.setattr(tiny_model, "generate", spying_generate)
    return counts


def test_decomposer_respects_max_new_tokens_and_counts_its_work(tiny_model, tiny_tokenizer,
                                                                new_token_counts):
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=2, max_new_tokens=5)
    decomposer(ITEMS)
    assert len(new_token_counts) == 2
    assert all(0 < n <= 5 for n in new_token_counts)
    # One decode step per new column of each batch; tokens count the rows' real tokens only.
    assert decomposer.last_counts["decode_steps"] == sum(new_token_counts)
    assert 0 < decomposer.last_counts["tokens"] <= 2 * new_token_counts[0] + new_token_counts[1]
    decomposer([])
    assert decomposer.last_counts == {"tokens": 0, "decode_steps": 0, "cut_off": 0}


def test_decomposer_counts_and_warns_of_decompositions_its_budget_cut_off(
        tiny_model, tiny_tokenizer, caplog):
    # The random model never ends a decomposition: 5 tokens cut every one off.
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=2, max_new_tokens=5)
    with caplog.at_level("WARNING"):
        decomposer(ITEMS)
        decomposer(ITEMS)
    assert decomposer.last_counts["cut_off"] == len(ITEMS)
    assert caplog.text.count("gsrm_max_new_tokens, now 5") == 1  # once a run, not once a call
    assert f"cut off {len(ITEMS)} of {len(ITEMS)} decompositions" in caplog.text


def test_rows_the_step_limit_ends_are_not_counted_as_cut_off(tiny_model, tiny_tokenizer,
                                                           monkeypatch):
    """HF pads a row that a stopping criterion ended with the pad token, which need not be a
    stop token. A trained GSRM cannot be had here, so `generate` is a stand-in that runs the
    real stopping criterion as HF's loop does: rows with a step limit write two steps, the
    others blank lines until the budget ends them. Only those are cut off."""
    pad = tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")  # special, but no stop token
    assert pad not in stop_token_ids(tiny_model, tiny_tokenizer)
    steps = [Step("m1", "q1", "1"), Step("m2", "q2", "2")]
    written = tiny_tokenizer(render_steps(steps), add_special_tokens=False)["input_ids"]
    newline = tiny_tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    budget = len(written) + 4

    def generate(input_ids, max_new_tokens, stopping_criteria, **_):
        limits = stopping_criteria[0].limits
        done = [False] * len(limits)
        sequences = input_ids
        for position in range(max_new_tokens):
            column = [pad if done[row] else written[position]
                      if limit is not None and position < len(written) else newline
                      for row, limit in enumerate(limits)]
            sequences = torch.cat([sequences, torch.tensor(column)[:, None]], dim=1)
            stopped = stopping_criteria[0](sequences, None).tolist()
            done = [d or s for d, s in zip(done, stopped)]
            if all(done):
                break
        return sequences

    monkeypatch.setattr(tiny_model, "generate", generate)
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=4, max_new_tokens=budget)
    result = decomposer(ITEMS, max_steps=[1, None, 1])
    assert result[0] == result[2] == steps[:1]
    assert decomposer.last_counts["cut_off"] == 1  # the row without a limit


def test_cut_off_rows_are_full_rows_without_an_end_of_sequence(tiny_model, tiny_tokenizer,
                                                                monkeypatch):
    eos, pad, word = tiny_tokenizer.eos_token_id, tiny_tokenizer.pad_token_id, 1000
    rows = torch.tensor([[word, word, word], [word, eos, pad], [word, word, 7]])
    monkeypatch.setattr(tiny_model.generation_config, "eos_token_id", None)
    assert cut_off_rows(rows, 3, tiny_model, tiny_tokenizer) == [True, False, True]
    # The generation config's end-of-turn ids end a row too (an id or a list).
    monkeypatch.setattr(tiny_model.generation_config, "eos_token_id", [eos, 7])
    assert cut_off_rows(rows, 3, tiny_model, tiny_tokenizer) == [True, False, False]
    # Fewer columns than the limit: generation stopped because every row had ended.
    assert cut_off_rows(rows[:, :2], 3, tiny_model, tiny_tokenizer) == [False] * 3


def test_decomposer_gives_no_steps_to_empty_reasoning_without_asking_the_model(
        tiny_model, tiny_tokenizer, monkeypatch):
    rows = []
    generate = tiny_model.generate

    def spying_generate(*args, **kwargs):
        rows.append(kwargs["input_ids"].shape[0])
        return generate(*args, **kwargs)

    monkeypatch.setattr(tiny_model, "generate", spying_generate)
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=8, max_new_tokens=4)
    items = [ITEMS[0], DecomposeInput(ITEMS[1].question, "  \n"), ITEMS[2]]
    texts = decomposer.completions(items)
    assert texts[1] == "" and rows == [2]  # one call, for the two items with reasoning
    assert decomposer([DecomposeInput("q", "")]) == [[]] and rows == [2]


def test_decomposer_fits_its_budget_into_the_models_max_seq_length(tiny_model, tiny_tokenizer,
                                                                   new_token_counts, monkeypatch,
                                                                   caplog):
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, batch_size=3, max_new_tokens=20)
    prompt_length = max(len(ids) for ids in chat_token_ids(tiny_tokenizer, [
        decomposition_messages(i.question, i.reasoning, True) for i in ITEMS]))
    monkeypatch.setattr(tiny_model, "max_seq_length", prompt_length + 3, raising=False)
    decomposer.completions(ITEMS)
    assert new_token_counts == [3]

    monkeypatch.setattr(tiny_model, "max_seq_length", prompt_length, raising=False)
    with caplog.at_level("WARNING"):
        assert decomposer(ITEMS) == [[], [], []]
    assert new_token_counts == [3] and "raise max_seq_length" in caplog.text


def test_decomposer_with_gsrm_adapter_leaves_student_untouched(student_with_saved_gsrm,
                                                               tiny_tokenizer):
    model = student_with_saved_gsrm
    before = _adapter_state(model)
    decomposer = GSRMDecomposer(model, tiny_tokenizer, adapter="gsrm", max_new_tokens=4)
    assert not decomposer.few_shot  # a trained adapter runs on its zero-shot training prompt
    assert len(decomposer(ITEMS)) == len(ITEMS)
    assert _adapter_state(model) == before


def test_max_steps_keeps_first_steps_per_item(tiny_model, tiny_tokenizer, monkeypatch):
    three_steps = render_steps([Step(f"m{i}", f"q{i}", f"a{i}") for i in (1, 2, 3)])
    decomposer = GSRMDecomposer(tiny_model, tiny_tokenizer, max_steps=2)
    monkeypatch.setattr(decomposer, "completions",
                        lambda items, max_steps=None: [three_steps] * len(items))
    assert [len(s) for s in decomposer(ITEMS)] == [2, 2, 2]
    assert [len(s) for s in decomposer(ITEMS, max_steps=[1, None, 5])] == [1, 3, 3]
    with pytest.raises(ValueError, match="limits"):
        decomposer(ITEMS, max_steps=[1])


def _first_stop(tokenizer, text: str, limit: int) -> str | None:
    """Feed `text` token by token to a `_StepLimit` and return the output it stops after."""
    prompt = [151644, 77091, 198]  # "<|im_start|>assistant\n"
    output = tokenizer(text, add_special_tokens=False)["input_ids"]
    criterion = _StepLimit(tokenizer, [limit, None], prompt_length=len(prompt))
    for end in range(1, len(output) + 1):
        row = prompt + output[:end]
        done = criterion(torch.tensor([row, row]), scores=None)
        assert not done[1]  # no limit, never stopped
        # The rows it ended, which the decomposer does not count as cut off by the budget.
        assert criterion.stopped == ({0} if done[0] else set())
        if done[0]:
            return tokenizer.decode(output[:end])
    return None


def test_step_limit_stops_where_the_step_after_the_last_kept_one_begins(tiny_tokenizer):
    text = render_steps([Step(f"meta {i}", f"query {i}", f"answer {i}") for i in (1, 2, 3)])
    so_far = _first_stop(tiny_tokenizer, text, limit=2)
    # At the first letter of the next tag, which the decomposer drops: not its whole line.
    assert so_far is not None and so_far.endswith("[Answer 2]: answer 2\n[Meta")
    assert without_partial_tag(so_far).endswith("[Answer 2]: answer 2\n")
    assert parse_steps(without_partial_tag(so_far)) == parse_steps(text)[:2]
    # Without the next tag, the answer may still go on: no stop.
    assert _first_stop(tiny_tokenizer, text.split("\n[Meta-reasoning 3]")[0] + "\n",
                       limit=2) is None


def test_only_the_beginning_of_a_tag_is_dropped_from_the_end_of_a_decomposition():
    assert without_partial_tag("a\n[Meta-reas") == "a\n"
    assert without_partial_tag("a\n**[Sub") == "a\n"
    for text in ("a\n[0, 1)", "a\n[", "a\n[M", "a\n[the docs", "a\n[Answer 2]: 6", "[Meta"):
        assert without_partial_tag(text) == text


def test_step_limit_stops_before_a_bold_tag_too(tiny_tokenizer):
    text = ("**[Meta-reasoning 1]:** m1\n**[Sub-problem 1]:** q1\n**[Answer 1]:** 18\n"
            "**[Meta-reasoning 2]:** m2\n**[Sub-problem 2]:** q2\n")
    so_far = _first_stop(tiny_tokenizer, text, limit=1)
    assert so_far is not None and so_far.endswith("**[Answer 1]:** 18\n**[Meta")
    assert parse_steps(without_partial_tag(so_far)) == [Step("m1", "q1", "18")]


@pytest.mark.parametrize("answer", [
    "\\[\n24 - 18 = 6\n\\]", "24 - 18\n= 6 muffins", "- 6 muffins\n- 2 given away", "\n\n6",
    " 6\r", " The intervals are\n[0, 1] and [2, 3]", " 6, see\n[the docs](https://x.org)",
    " The solution set is\n[a, b] with a < b", " 6\n[Q: check]", " 6\n[sic]"])
def test_step_limit_keeps_an_answer_that_goes_on_over_lines(tiny_tokenizer, answer):
    text = ("[Meta-reasoning 1]: m1\n[Sub-problem 1]: q1\n[Answer 1]: 18\n"
            f"[Meta-reasoning 2]: m2\n[Sub-problem 2]: q2\n[Answer 2]:{answer}\n"
            "[Meta-reasoning 3]: m3\n[Sub-problem 3]: q3\n")
    so_far = _first_stop(tiny_tokenizer, text, limit=2)
    assert so_far is not None and len(so_far) < len(text)
    assert parse_steps(without_partial_tag(so_far)) == parse_steps(text)[:2]


def test_step_limit_without_an_answer_stops_when_the_next_step_has_a_line(tiny_tokenizer):
    text = ("[Meta-reasoning 1]: meta 1\n[Sub-problem 1]: query 1\n"
            "[Meta-reasoning 2]: meta 2\n[Sub-problem 2]: query 2\n[Answer 2]: answer 2\n")
    so_far = _first_stop(tiny_tokenizer, text, limit=1)
    assert so_far is not None and so_far.endswith("[Meta-reasoning 2]: meta 2\n")
    assert [step.query for step in parse_steps(so_far)[:1]] == ["query 1"]


# --- prompts ---------------------------------------------------------------------------------

def test_decomposition_prompts():
    zero_shot = decomposition_messages("Q?", "R.", few_shot=False)
    assert [m["role"] for m in zero_shot] == ["system", "user"]
    assert "Q?" in zero_shot[-1]["content"] and "R." in zero_shot[-1]["content"]

    few_shot = decomposition_messages("Q?", "R.", few_shot=True)
    assert [m["role"] for m in few_shot] == ["system"] + ["user", "assistant"] * 2 + ["user"]
    assert few_shot[0] == zero_shot[0] and few_shot[-1] == zero_shot[-1]
    replies = [m["content"] for m in few_shot if m["role"] == "assistant"]
    assert [parse_steps(r) for r in replies] == [list(e[2]) for e in DECOMPOSE_EXAMPLES]


def test_few_shot_is_the_default_without_adapter(tiny_model, tiny_tokenizer):
    assert GSRMDecomposer(tiny_model, tiny_tokenizer).few_shot
    assert not GSRMDecomposer(tiny_model, tiny_tokenizer, adapter="gsrm").few_shot
    assert GSRMDecomposer(tiny_model, tiny_tokenizer, adapter="gsrm", few_shot=True).few_shot
