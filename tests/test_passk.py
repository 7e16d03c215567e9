"""pass@k against values computed by hand, and against brute-force enumeration."""
from __future__ import annotations

import itertools
import math

import pytest

from rlkd_lite.eval.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize("n, c, k, expected", [
    (5, 0, 1, 0.0),              # nothing right: never passes
    (5, 5, 3, 1.0),              # everything right: always passes
    (5, 2, 1, 2 / 5),            # 1 - C(3,1)/C(5,1) = 1 - 3/5: pass@1 is the share right
    (5, 2, 2, 7 / 10),           # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (10, 3, 4, 5 / 6),           # 1 - C(7,4)/C(10,4) = 1 - 35/210
    (4, 1, 4, 1.0),              # all 4 drawn: the right one is among them (n - c < k)
    (8, 1, 2, 1 / 4),            # 1 - C(7,2)/C(8,2) = 1 - 21/28
    (200, 1, 100, 1 / 2),        # 1 - C(199,100)/C(200,100) = 1 - 100/200; big binomials, exact
])
def test_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_matches_drawing_every_subset_of_k_samples():
    for n in range(1, 7):
        for c in range(n + 1):
            samples = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                draws = list(itertools.combinations(samples, k))
                share = sum(any(draw) for draw in draws) / len(draws)
                assert math.isclose(pass_at_k(n, c, k), share, abs_tol=1e-12), (n, c, k)


def test_mean_over_problems():
    # (0 + 0.7 + 1) / 3 with n = 5, k = 2 (see the table above)
    assert mean_pass_at_k([0, 2, 5], n=5, k=2) == pytest.approx(1.7 / 3)


@pytest.mark.parametrize("n, c, k", [(4, 1, 5), (4, 1, 0), (4, 5, 1), (4, -1, 1)])
def test_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_mean_needs_problems():
    with pytest.raises(ValueError, match="no problems"):
        mean_pass_at_k([], n=4, k=1)
