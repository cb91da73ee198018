"""Is a classifier better than no skill? Exact binomial tests on test-set counts (plain NumPy).

A test accuracy above a threshold is not evidence of skill when the test split is small
or one class dominates: 6/19 right on three classes is what always answering the largest
class scores. `beats_baseline` asks whether the accuracy is significantly above a no-skill
baseline (one-sided exact binomial test), `mcnemar_p` whether two models scored on the
same images differ. Every probability is summed in log space, so the tails stay exact
for test sets of a million images and p-values far below 1e-300 do not turn into NaN.
"""

import math
from dataclasses import dataclass

import numpy as np


def best_constant_answer(test_labels: np.ndarray, num_classes: int) -> tuple[int, float]:
    """The class whose constant answer scores best on the test split, and that accuracy.

    A model without skill, one that answers one class whatever the image (what an
    untrained or collapsed network does), scores that class's test share: at most this.
    The train split's largest class is not enough: the split draws each image, so with
    classes of about equal size the train's largest often has the fewest test images (or
    none), and a model stuck on another class passed the gate (11% of such models with 5
    classes of 100 images, 73% with 100 classes of 8: `bench.no_skill_gate`).

    Args:
        test_labels: true class ids `[N]` of the test split.
        num_classes: the number of classes.

    Returns:
        `(class id, accuracy)`: the most frequent test class (the lowest id among ties)
        and its share of the test split (0.0 for no labels).
    """
    labels = np.asarray(test_labels, dtype=np.int64)
    if labels.size == 0:
        return 0, 0.0
    counts = np.bincount(labels, minlength=num_classes)
    best = int(np.argmax(counts))
    return best, float(counts[best] / labels.size)


def _log_pmf(i: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )


def _log_sum_of_terms(first: int, last: int, n: int, p: float) -> float:
    """`log sum P[X = i]` for i from `first` to `last` (0 < p < 1), walking away from `first`.

    Only `P[X = first]` comes from `math.lgamma`; the others from the ratio of successive
    terms, accumulated as a cumulative sum of logs, then added by log-sum-exp.
    """
    odds = math.log(p) - math.log1p(-p)
    if last >= first:  # P[i + 1] / P[i] = (n - i) / (i + 1) * p / (1 - p)
        i = np.arange(first, last, dtype=np.float64)
        steps = np.log(n - i) - np.log(i + 1) + odds
    else:  # P[i - 1] / P[i] = i / (n - i + 1) * (1 - p) / p
        i = np.arange(first, last, -1, dtype=np.float64)
        steps = np.log(i) - np.log(n - i + 1) - odds
    log_terms = _log_pmf(first, n, p) + np.concatenate(([0.0], np.cumsum(steps)))
    top = float(log_terms.max())
    return top + math.log(float(np.sum(np.exp(log_terms - top))))


def log_binomial_tail(k: int, n: int, p: float) -> float:
    """`log P[X >= k]` for `X ~ Binomial(n, p)`; `-inf` when the probability is 0.

    Below the mean the tail is near 1, and is computed as `1 - P[X <= k - 1]` (`log1p`)
    so that the float error of the log terms does not show against 1.
    """
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if k <= 0:
        return 0.0
    if k > n or p == 0.0:
        return -math.inf
    if p == 1.0:
        return 0.0
    if k > n * p:
        return min(0.0, _log_sum_of_terms(k, n, n, p))
    return math.log1p(-min(1.0, math.exp(_log_sum_of_terms(k - 1, 0, n, p))))


def binomial_tail(k: int, n: int, p: float) -> float:
    """Exact `P[X >= k]` for `X ~ Binomial(n, p)`, stable for n up to 1e6 and beyond.

    Args:
        k: the smallest count in the tail (k <= 0 gives 1, k > n gives 0).
        n: the number of trials.
        p: the success probability of one trial, in [0, 1].
    """
    return math.exp(log_binomial_tail(k, n, p))


@dataclass(frozen=True)
class SkillTest:
    """The one-sided exact binomial test of H0: true accuracy <= the no-skill baseline.

    Attributes:
        accuracy: the observed test accuracy `correct / n` (0.0 for no test images).
        baseline: the no-skill accuracy (e.g. `best_constant_answer`'s).
        p_value: `P[X >= correct]` for `X ~ Binomial(n, baseline)`.
        alpha: the significance level.
        passed: `p_value < alpha`.
        correct: the test images classified correctly.
        n: the test images.
        description: what the baseline is, for `reason`, e.g. "always 'sneaker'".
    """

    accuracy: float
    baseline: float
    p_value: float
    alpha: float
    passed: bool
    correct: int = 0
    n: int = 0
    description: str = "the no-skill baseline"

    def reason(self, description: str | None = None) -> str:
        """One line for the blessing, `PASS: ...` or `FAIL: ...`.

        Args:
            description: overrides the stored description of the baseline.
        """
        name = description or self.description
        verdict = "PASS" if self.passed else "FAIL"
        if self.n == 0:
            return f"{verdict}: no test images, so no evidence of beating {name}"
        verb = "beats" if self.passed else "does not significantly beat"
        sign = "<" if self.passed else ">="
        return (
            f"{verdict}: test accuracy {self.accuracy:.4f} ({self.correct}/{self.n}) {verb} "
            f"{name} {self.baseline:.4f} (one-sided binomial p={self.p_value:.2g} {sign} "
            f"{self.alpha:g})"
        )


def beats_baseline(
    correct: int,
    n: int,
    baseline: float,
    alpha: float = 0.01,
    description: str = "the no-skill baseline",
) -> SkillTest:
    """Tests whether `correct` right out of `n` is significantly above a no-skill accuracy.

    Each test image is taken as an independent trial that a no-skill model gets right with
    probability `baseline`; the p-value is the chance of `correct` or more right under that
    model. A baseline of 1 can never be beaten (p = 1); with a baseline of 0 a single
    correct answer is proof of skill (p = 0). No test images never pass.

    Args:
        correct: test images classified correctly.
        n: test images.
        baseline: the no-skill accuracy, in [0, 1].
        alpha: the significance level, in (0, 1).
        description: what the baseline is, for `SkillTest.reason` ("always 'sneaker'").

    Returns:
        The `SkillTest`.
    """
    if not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if not 0.0 <= baseline <= 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"need 0 <= baseline <= 1 and 0 < alpha < 1, got {baseline}, {alpha}")
    if n == 0:
        return SkillTest(0.0, baseline, 1.0, alpha, False, 0, 0, description)
    p_value = binomial_tail(correct, n, baseline)
    return SkillTest(
        correct / n, baseline, p_value, alpha, p_value < alpha, correct, n, description
    )


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value for two models scored on the same test images.

    Only the discordant images carry evidence: under H0 (equally accurate models) each is
    equally likely to favour either model, so `b ~ Binomial(b + c, 1/2)`.

    Args:
        b: images the first model gets right and the second wrong.
        c: images the second model gets right and the first wrong.

    Returns:
        `min(1, 2 * P[X >= max(b, c)])`, 1.0 when there are no discordant images.
    """
    if b < 0 or c < 0:
        raise ValueError(f"counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_tail(max(b, c), b + c, 0.5))


def skill_reasons(
    y_true: np.ndarray,
    predicted: np.ndarray,
    labels: list[str],
    alpha: float,
    head_correct: np.ndarray | None = None,
) -> list[str]:
    """The no-skill gate's lines for the blessing, `PASS: ...` or `FAIL: ...`.

    1. The candidate beats the best constant answer on the test split
       (`best_constant_answer`, `beats_baseline`).
    2. With `head_correct`, the candidate is not significantly worse than the head-only
       model on the same images (exact McNemar at `alpha`): fine-tuning that damaged
       the model fails even when it still beats no skill.

    Args:
        y_true: true class ids `[N]` of the test images the candidate classified.
        predicted: the candidate's class ids `[N]`.
        labels: class names.
        alpha: the significance level.
        head_correct: whether the head-only model got each of the same images right `[N]`.
    """
    correct = predicted == y_true
    constant, baseline = best_constant_answer(y_true, len(labels))
    always = f"always {labels[constant]!r}"
    test = beats_baseline(int(correct.sum()), len(y_true), baseline, alpha, always)
    lines = [test.reason()]
    if head_correct is not None:
        worse = int((head_correct & ~correct).sum())  # the head right, the candidate wrong
        better = int((~head_correct & correct).sum())
        p_value = mcnemar_p(worse, better)
        damaged = worse > better and p_value < alpha
        verdict, how = ("FAIL", "significantly") if damaged else ("PASS", "not significantly")
        lines.append(
            f"{verdict}: {how} worse than the head-only model on the same {len(y_true)} "
            f"images ({better} fixed, {worse} broken; McNemar p={p_value:.2g})"
        )
    return lines
