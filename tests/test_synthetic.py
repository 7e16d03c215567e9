"""The synthetic generator: arithmetic right by construction, deterministic, splits disjoint."""
from __future__ import annotations

import ast
import operator
import re
import time
from fractions import Fraction

import pytest

from rlkd_lite.data.synthetic import generate_problems
from rlkd_lite.errors import RlkdError

ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>(\S+?)[.\s]")
# Numbers a solution may use without the question writing them as digits: "twice", "four
# legs", "two legs", three people's ages, and units (hours, percent, dozen, metric).
KNOWN_CONSTANTS = {2, 3, 4, 12, 60, 100, 1000}
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}


def evaluate(expression: str) -> Fraction:
    """Evaluate an annotation's arithmetic exactly, independently of the generator's code."""
    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp):
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int), expression
        return Fraction(node.value)
    return walk(ast.parse(expression, mode="eval").body)


@pytest.fixture(scope="module")
def problems():
    return generate_problems(3000, seed=0) + generate_problems(1000, seed=5, split="test")


def test_every_annotation_and_final_answer_is_right(problems):
    for problem in problems:
        *lines, final = problem.reasoning.split("\n")
        assert final == f"#### {problem.answer}"
        assert len(lines) == len(problem.steps)
        for line, step in zip(lines, problem.steps):
            [(expression, written, shown)] = ANNOTATION.findall(line + " ")
            value = evaluate(expression)
            assert value.denominator == 1 and value >= 0, line
            assert written == shown == step.answer == str(value), line
            assert line.count(f"{expression} = <<") == 1, line
        assert problem.steps[-1].answer == problem.answer


def test_solutions_only_use_given_or_computed_numbers(problems):
    for problem in problems:
        known = {int(n) for n in re.findall(r"\d+", problem.question)} | KNOWN_CONSTANTS
        for step, line in zip(problem.steps, problem.reasoning.split("\n")):
            expression = ANNOTATION.search(line + " ").group(1)
            operands = {int(n) for n in re.findall(r"\d+", expression)}
            assert operands <= known, (problem.question, line)
            known.add(int(step.answer))


def test_steps_have_meta_query_and_short_answer(problems):
    for problem in problems:
        assert 2 <= len(problem.steps) <= 6
        for step in problem.steps:
            # Meta-reasoning says why a sub-problem is next; with no digits it cannot leak
            # the step's answer.
            assert step.meta and not re.search(r"\d", step.meta), step
            assert step.query.endswith("?"), step
            assert step.answer.isdigit(), step


def test_families_and_step_counts_vary(problems):
    assert len({p.family for p in problems}) >= 10
    assert {len(p.steps) for p in problems} == {2, 3, 4, 5, 6}
    assert len({p.question.split()[0] for p in problems}) > 30  # names and openings vary


def test_same_seed_same_problems_and_prefix_stable():
    assert generate_problems(40, seed=3) == generate_problems(40, seed=3)
    assert generate_problems(15, seed=3) == generate_problems(40, seed=3)[:15]
    assert generate_problems(40, seed=3) != generate_problems(40, seed=4)


def test_ids_name_split_and_index():
    assert [p.id for p in generate_problems(3, split="test")] == [
        "syn-test-000000", "syn-test-000001", "syn-test-000002"]


def test_questions_are_distinct_within_a_call(problems):
    train = [p.question for p in problems if p.id.startswith("syn-train")]
    assert len(set(train)) == len(train)


def test_train_and_test_never_share_a_problem_whatever_the_seeds():
    def chains(problems):
        return {tuple(m[0] for m in ANNOTATION.findall(p.reasoning)) for p in problems}

    train = generate_problems(2000, seed=0) + generate_problems(2000, seed=1)
    test = generate_problems(2000, seed=0, split="test") + generate_problems(2000, seed=1,
                                                                            split="test")
    assert not {p.question for p in train} & {p.question for p in test}
    # Not even the same arithmetic with other names and objects.
    assert not chains(train) & chains(test)


def test_ten_thousand_problems_are_fast():
    start = time.perf_counter()
    assert len(generate_problems(10_000, seed=7)) == 10_000
    # ~0.3 s on these CPUs; the bound leaves room for a busy shared machine.
    assert time.perf_counter() - start < 5


def test_bad_arguments_are_user_errors():
    with pytest.raises(RlkdError, match="unknown split 'dev'"):
        generate_problems(3, split="dev")
    with pytest.raises(RlkdError, match=">= 0"):
        generate_problems(-1)
    assert generate_problems(0) == []
