"""pass@k: the chance that at least one of k samples is right, estimated from n >= k samples.

The unbiased estimator of Chen et al. (2021, "Evaluating Large Language Models Trained on
Code"): with c right answers among n samples of one problem,

    pass@k = 1 - C(n - c, k) / C(n, k)

which is the probability that k samples drawn without replacement from the n include a right
one. Simply taking the first k samples would be unbiased too, but wastes the other n - k.
Pure Python, exact integer binomials.
"""
from __future__ import annotations

import math
from collections.abc import Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k of one problem with `c` right answers among `n` samples.

    Needs 0 <= c <= n and 1 <= k <= n (ValueError otherwise)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:  # every draw of k samples includes a right one
        return 1.0
    # Python divides big integers exactly rounded, so this is exact up to the final float.
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(correct_counts: Sequence[int], n: int, k: int) -> float:
    """pass@k over problems: the mean of each problem's pass@k (each has `n` samples)."""
    if not correct_counts:
        raise ValueError("no problems")
    return math.fsum(pass_at_k(n, c, k) for c in correct_counts) / len(correct_counts)
