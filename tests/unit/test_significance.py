"""The no-skill gate and McNemar against exact values computed with integer arithmetic."""

import math
from fractions import Fraction

import numpy as np
import pytest

from kftransfer.components.core.significance import (
    beats_baseline,
    best_constant_answer,
    binomial_tail,
    log_binomial_tail,
    mcnemar_p,
    skill_reasons,
)


def exact_tail(k: int, n: int, p: Fraction) -> float:
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))


def test_binomial_tail_known_value():
    # P[X >= 8] for 10 fair coins: (45 + 10 + 1) / 1024
    assert binomial_tail(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)


@pytest.mark.parametrize("n", [1, 7, 60])
@pytest.mark.parametrize("p", [Fraction(1, 10), Fraction(1, 3), Fraction(9, 10)])
def test_binomial_tail_matches_exact_rational_sums(n, p):
    for k in range(-1, n + 2):
        assert binomial_tail(k, n, float(p)) == pytest.approx(exact_tail(k, n, p), rel=1e-9)


def test_binomial_tail_is_monotone_in_k_and_p():
    tails = [binomial_tail(k, 200, 0.3) for k in range(0, 202)]
    assert tails[0] == 1.0 and tails[-1] == 0.0
    assert all(a >= b for a, b in zip(tails, tails[1:], strict=False))
    by_p = [binomial_tail(70, 200, p) for p in np.linspace(0.2, 0.5, 16)]
    assert all(a < b for a, b in zip(by_p, by_p[1:], strict=False))
    assert by_p[0] < 1e-3 and by_p[-1] > 0.999


def test_binomial_tail_is_stable_for_a_million_trials():
    # Normal approximation: mean 500000, sd 500; one sd (+ continuity) above the mean.
    assert binomial_tail(500_500, 1_000_000, 0.5) == pytest.approx(0.1589, abs=2e-3)
    assert binomial_tail(0, 1_000_000, 0.3) == 1.0
    # The last term alone is 2^-1e6: far below float range, yet finite in log space.
    assert log_binomial_tail(1_000_000, 1_000_000, 0.5) == pytest.approx(1e6 * math.log(0.5))
    assert binomial_tail(1_000_000, 1_000_000, 0.5) == 0.0


def test_binomial_tail_degenerate_probabilities():
    assert binomial_tail(1, 5, 0.0) == 0.0 and binomial_tail(0, 5, 0.0) == 1.0
    assert binomial_tail(5, 5, 1.0) == 1.0 and binomial_tail(6, 5, 1.0) == 0.0


def test_the_baseline_is_the_best_constant_answer_on_the_test_split():
    assert best_constant_answer(np.array([1, 3, 3, 3]), 4) == (3, 0.75)
    assert best_constant_answer(np.array([2, 0, 2, 0]), 3) == (0, 0.5)  # a tie: the lowest id
    assert best_constant_answer(np.array([], dtype=int), 3) == (0, 0.0)


def test_a_model_stuck_on_one_class_never_passes_whichever_class():
    # Before, the baseline was the train split's largest class, which the per-image split
    # can leave with no test image: its baseline 0, one right answer "proved" skill
    # (helper audit: 'PASS: test accuracy 0.0223 (4/179) beats always 'class004' 0.0000').
    labels = ["c0", "c1", "c2", "c3", "c4"]
    y_true = np.array([1] * 4 + [2] * 6 + [3] * 5 + [4] * 5)  # no test image of c0
    for stuck in range(len(labels)):
        [reason] = skill_reasons(y_true, np.full(len(y_true), stuck), labels, 0.01)
        assert reason.startswith("FAIL: ") and "beat always 'c2' 0.3000" in reason, reason
    skilled = y_true.copy()
    skilled[:3] = 2  # 17/20 right
    [reason] = skill_reasons(y_true, skilled, labels, 0.01)
    assert reason.startswith("PASS: test accuracy 0.8500 (17/20) beats always 'c2' 0.3000")


def test_chance_level_accuracy_does_not_pass():
    # 3 classes, 19 test images, 6 right (0.316) while always-majority gets 0.368
    _, baseline = best_constant_answer(np.array([0] * 7 + [1] * 6 + [2] * 6), 3)
    assert baseline == pytest.approx(7 / 19)
    test = beats_baseline(6, 19, baseline, description="always 'a'")
    assert test.accuracy == pytest.approx(0.3158, abs=1e-4)
    assert not test.passed and test.p_value > 0.5
    assert test.reason().startswith("FAIL: test accuracy 0.3158 (6/19)")


def test_a_clearly_skilled_model_passes_with_a_readable_reason():
    test = beats_baseline(78, 87, 0.1034, description="always 'sneaker'")
    assert test.passed and test.p_value < 1e-40
    assert test.p_value == pytest.approx(exact_tail(78, 87, Fraction(1034, 10000)), rel=1e-9)
    assert test.reason() == (
        f"PASS: test accuracy 0.8966 (78/87) beats always 'sneaker' 0.1034 "
        f"(one-sided binomial p={test.p_value:.2g} < 0.01)"
    )
    assert "always 'bag'" in test.reason("always 'bag'")


def test_significance_depends_on_the_test_size():
    # the same 60% accuracy against a 50% baseline: noise on 10 images, evidence on 1000
    assert not beats_baseline(6, 10, 0.5).passed
    assert beats_baseline(600, 1000, 0.5).passed


def test_edge_cases_of_the_gate():
    empty = beats_baseline(0, 0, 0.2)
    assert not empty.passed and empty.p_value == 1.0 and "no test images" in empty.reason()
    assert beats_baseline(1, 5, 0.0).passed  # no-skill never right: one hit is skill
    assert not beats_baseline(0, 5, 0.0).passed
    assert not beats_baseline(5, 5, 1.0).passed  # a perfect baseline cannot be beaten
    with pytest.raises(ValueError):
        beats_baseline(6, 5, 0.5)
    with pytest.raises(ValueError):
        beats_baseline(3, 5, 1.5)


def test_mcnemar_exact_values_and_symmetry():
    assert mcnemar_p(0, 0) == 1.0
    for b in (1, 4, 30):
        assert mcnemar_p(b, b) == 1.0
    # 10 vs 2 discordant: 2 * P[X >= 10], X ~ Bin(12, 1/2) = 2 * 79 / 4096
    assert mcnemar_p(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_p(40, 10) < 1e-4 < mcnemar_p(14, 10)
