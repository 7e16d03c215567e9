"""The GRPO reward functions, called the way TRL calls them (conversational completions,
dataset columns as keyword lists)."""
from __future__ import annotations

import pytest

from rlkd_lite.structure.decomposers import make_decomposer
from rlkd_lite.structure.judges import make_judge
from rlkd_lite.structure.steps import Step, steps_from_json, steps_to_json
from rlkd_lite.train.rewards import (LastBatch, StructureReward, TagCountReward,
                                     build_reward_functions, render_target)

QUESTION = "Ann has 3 boxes of 4 pens and gives away 5 pens. How many pens are left?"
TEACHER = "Ann has 3*4 = <<3*4=12>>12 pens.\nShe has 12-5 = <<12-5=7>>7 pens left."
PROMPT = [{"role": "system", "content": "Solve it."}, {"role": "user", "content": QUESTION}]


def said(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def call(reward, completions, **columns):
    n = len(completions)
    return reward(prompts=[PROMPT] * n, completions=[said(c) for c in completions],
                  completion_ids=[[0]] * n, **{k: [v] * n for k, v in columns.items()})


def rewards_by_name(answer_format="think"):
    last = LastBatch()
    funcs, weights = build_reward_functions({"format": 10, "tag_count": 10, "structure": 15,
                                             "accuracy": 15}, last=last,
                                            answer_format=answer_format,
                                            decomposer=make_decomposer("rules"),
                                            judge=make_judge("exact"))
    return {f.__name__: f for f in funcs}, weights, last


def test_accuracy_comes_first_and_weights_follow_their_rewards():
    funcs, weights, _ = rewards_by_name()
    assert list(funcs)[0] == "accuracy" and weights[0] == 15.0
    assert dict(zip(funcs, weights)) == {"accuracy": 15.0, "format": 10.0, "tag_count": 10.0,
                                         "structure": 15.0}


@pytest.mark.parametrize("text, expected", [
    ("<think>\n3*4 = 12\n12-5 = 7\n</think>\n#### 7", 1.0),
    ("The answer is 7.", 0.0),
    ("<think>12-5 = 7</think> #### 7 pens", 0.0),  # words after the number
    ("<think>12-5 = 7\n#### 7", 0.0),              # unclosed think
])
def test_accuracy_and_format_think(text, expected):
    funcs, _, _ = rewards_by_name()
    call(funcs["accuracy"], [text], answer="7")
    assert call(funcs["format"], [text]) == [expected]


def test_accuracy_by_value_not_by_string():
    funcs, _, _ = rewards_by_name()
    assert call(funcs["accuracy"], ["#### 7.0", "#### $7", "#### 8", "no number"],
                answer="7") == [1.0, 1.0, 0.0, 0.0]


def test_plain_format_rejects_think_tags_and_requires_an_answer_line():
    funcs, _, _ = rewards_by_name("plain")
    call(funcs["accuracy"], ["x"], answer="7")
    assert call(funcs["format"], ["3*4 = 12\n12-5 = 7\n#### 7", "<think>a</think>\n#### 7",
                                  "#### 7", "3*4 = 12"]) == [1.0, 0.0, 0.0, 0.0]
    # Blank lines before the answer line count as its line break; a collapsed policy's run of
    # newlines (once quadratic) gets no format reward.
    assert call(funcs["format"], ["3*4 = 12\n\n  \n#### 12", "\n" * 50_000,
                                  "\n" * 50_000 + "x#### 7", "a\n####" + "1" * 50_000 + "x"]
                ) == [1.0, 0.0, 0.0, 0.0]
    assert TagCountReward(LastBatch(), "plain").score("####" + "1" * 50_000 + "x") == 0.5


def test_tag_count_gives_partial_credit_per_piece():
    think = TagCountReward(LastBatch(), "think")
    assert think.score("<think>a</think>\n#### 7") == 1.0
    assert think.score("<think>a</think>\n#### 7 apples") == 0.75
    assert think.score("<think><think>a</think>") == 0.25
    assert TagCountReward(LastBatch(), "plain").score("a\n#### 7\n#### 8") == 0.5


@pytest.mark.parametrize("answer_format", ["think", "plain"])
def test_render_target_satisfies_its_own_format_reward(answer_format):
    funcs, _, _ = rewards_by_name(answer_format)
    target = render_target(TEACHER + "\n#### 7", "7", answer_format)
    assert target.count("####") == 1
    call(funcs["accuracy"], [target], answer="7")
    assert call(funcs["format"], [target]) == [1.0]
    assert call(funcs["tag_count"], [target]) == [1.0]


def test_tag_count_does_not_count_markdown_headings_as_answer_lines():
    headed = "#### Step 1: Add\n3+4 = 7\n#### 2. Check\n7-4 = 3"
    assert TagCountReward(LastBatch(), "plain").score(f"{headed}\n#### 7") == 1.0
    assert TagCountReward(LastBatch(), "think").score(f"<think>\n{headed}\n</think>\n#### 7") == 1.0
    assert TagCountReward(LastBatch(), "plain").score(headed) == 0.0  # no answer line at all


def test_render_target_keeps_reasoning_under_markdown_headings():
    reasoning = "#### Step 1: Add\n3+4 = 7\n#### Step 2: Check\n7-4 = 3"
    assert render_target(f"{reasoning}\n#### 7", "7", "plain") == f"{reasoning}\n#### 7"
    assert render_target(reasoning, "7", "think") == f"<think>\n{reasoning}\n</think>\n#### 7"


def teacher_steps_column() -> str:
    return steps_to_json(make_decomposer("rules")([_input(TEACHER)])[0])


def _input(text):
    from rlkd_lite.structure.decomposers import DecomposeInput

    return DecomposeInput(QUESTION, text)


def test_structure_reward_scores_aligned_reasoning_and_records_the_batch():
    last = LastBatch()
    reward = StructureReward(make_decomposer("rules"), make_judge("lexical"), normalize=False,
                             last=last)
    metrics = {}
    values = reward(prompts=[PROMPT] * 3, completions=[
        said("<think>Ann has 3*4 = 12 pens.\nShe has 12-5 = 7 pens left.</think>\n#### 7"),
        said("<think>She has 20-5 = 15 pens left.</think>\n#### 15"),
        said("")], teacher_steps=[teacher_steps_column()] * 3,
        log_metric=lambda k, v: metrics.__setitem__(k, v))
    assert values[0] == 2.0 and values[1] < 1.0 and values[2] == 0.0
    assert last.rewards["structure"] == values and len(last.student_steps) == 3
    assert {"structure/decompose_s", "structure/judge_s"} <= set(metrics)


def test_structure_reward_never_raises_on_a_broken_judge():
    def broken(pairs):
        raise RuntimeError("judge server went away")

    reward = StructureReward(make_decomposer("rules"), broken, normalize=False, last=LastBatch())
    assert call(reward, ["Ann has 3*4 = 12 pens."],
                teacher_steps=teacher_steps_column()) == [0.0]


def test_a_failed_batch_leaves_no_earlier_batch_behind_in_the_sample_record():
    rules = make_decomposer("rules")
    calls = []

    def decomposer(items):
        calls.append(len(items))
        if len(calls) > 1:
            raise RuntimeError("out of memory")
        return rules(items)

    last = LastBatch()
    reward = StructureReward(decomposer, make_judge("lexical"), normalize=False, last=last)
    assert call(reward, ["Ann has 3*4 = 12 pens."], teacher_steps=teacher_steps_column()) == [1.0]
    assert last.structure and last.student_steps
    assert call(reward, ["Ann has 5*4 = 20 pens."], teacher_steps=teacher_steps_column()) == [0.0]
    assert last.rewards["structure"] == [0.0]
    assert (last.structure, last.student_steps, last.teacher_steps) == ([], [], [])


def test_completions_without_teacher_steps_are_not_decomposed():
    seen = []

    def decomposer(items):
        seen.extend(items)
        return [[Step("m", "q", "a")] for _ in items]

    reward = StructureReward(decomposer, make_judge("exact"), normalize=False, last=LastBatch())
    teacher = steps_to_json([Step("m", "q", "a")])
    values = reward(prompts=[PROMPT] * 2, completions=[said("one"), said("two")],
                    teacher_steps=[teacher, ""])
    assert values == [1.0, 0.0] and [i.reasoning for i in seen] == ["one"]


def test_each_distinct_rollout_is_decomposed_once_and_empty_reasoning_not_at_all():
    seen = []

    def decomposer(items):
        seen.extend(items)
        return [[Step("m", "q", item.reasoning)] for item in items]

    reward = StructureReward(decomposer, make_judge("exact"), normalize=False, last=LastBatch())
    teacher = steps_to_json([Step("m", "q", "a")])
    metrics = {}
    values = reward(prompts=[PROMPT] * 5,
                    completions=[said("a"), said("b"), said("a"), said("<think> </think>"),
                                 said("a")],
                    teacher_steps=[teacher] * 5, log_metric=metrics.__setitem__)
    assert values == [1.0, 0.5, 1.0, 0.0, 1.0]
    assert [i.reasoning for i in seen] == ["a", "b"] and metrics["structure/decomposed"] == 2


def test_generating_decomposers_are_told_to_stop_at_the_teacher_step_count():
    limits = []

    def decomposer(items, max_steps=None):
        limits.append(max_steps)
        return [[] for _ in items]

    reward = StructureReward(decomposer, make_judge("exact"), normalize=False, last=LastBatch())
    teacher = steps_to_json([Step("m", "q", "a")] * 3)
    reward(prompts=[PROMPT], completions=[said("x")], teacher_steps=[teacher])
    assert limits == [[3]]


def test_steps_survive_the_dataset_column_round_trip():
    steps = [Step("why", "what", "7"), Step("next", "then", "")]
    assert steps_from_json(steps_to_json(steps)) == steps
    assert steps_from_json("") == []
