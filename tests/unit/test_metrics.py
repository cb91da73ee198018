"""Metrics against values computed by hand, and the blessing truth table."""

import numpy as np
import pytest

from kftransfer.components.core.blessing import bless, changed_classes
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.metrics import (
    classification_metrics,
    confusion_of_most_confused,
    most_confused_pairs,
)

LABELS = ["cat", "dog", "owl"]
# Six examples; the argmax predictions are cat, dog, dog, owl, cat, dog.
Y_TRUE = np.array([0, 0, 1, 2, 2, 1])
PROBABILITIES = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],  # cat predicted as dog
    [0.1, 0.8, 0.1],
    [0.2, 0.1, 0.7],
    [0.5, 0.1, 0.4],  # owl predicted as cat; owl second
    [0.2, 0.5, 0.3],
])  # fmt: skip


def test_metrics_match_a_hand_computed_case():
    m = classification_metrics(Y_TRUE, PROBABILITIES, LABELS, top_k=2)
    assert m["examples"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # cat: precision 1/2 (predicted twice, once right), recall 1/2; dog: 2/3, 1; owl: 1, 1/2.
    assert m["per_class"]["cat"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["dog"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["per_class"]["owl"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    # top-2: row 2 (cat: 0.3 is second) and row 5 (owl: 0.4 is second) become hits: 6/6.
    assert m["top_k_accuracy"] == pytest.approx(1.0)
    expected_loss = -np.mean(np.log([0.7, 0.3, 0.8, 0.7, 0.4, 0.5]))
    assert m["log_loss"] == pytest.approx(expected_loss)


def test_top_k_is_omitted_when_k_covers_every_class():
    assert classification_metrics(Y_TRUE, PROBABILITIES, LABELS, top_k=3)["top_k_accuracy"] is None


def test_a_class_never_predicted_has_zero_precision_not_a_crash():
    m = classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"])
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def candidate(accuracy, recalls=(0.9, 0.9), supports=None):
    supports = supports or [10] * len(recalls)
    return {
        "accuracy": accuracy,
        "per_class": {
            f"c{i}": {"recall": r, "support": n}
            for i, (r, n) in enumerate(zip(recalls, supports, strict=True))
        },
    }


@pytest.mark.parametrize(
    "accuracy,production,config,blessed,failing",
    [
        (0.80, None, EvalConfig(min_accuracy=0.75), True, []),
        (0.70, None, EvalConfig(min_accuracy=0.75), False, ["threshold"]),
        (0.80, 0.78, EvalConfig(), True, []),  # better than production
        (0.80, 0.805, EvalConfig(baseline_tolerance=0.01), True, []),  # within tolerance
        (0.80, 0.85, EvalConfig(baseline_tolerance=0.01), False, ["production"]),
        (0.70, 0.85, EvalConfig(min_accuracy=0.75), False, ["threshold", "production"]),
    ],
)
def test_blessing_truth_table(accuracy, production, config, blessed, failing):
    prod = None if production is None else {"accuracy": production}
    verdict = bless(candidate(accuracy), prod, config, note="no production model at x yet")
    assert verdict.blessed is blessed
    failed = [r for r in verdict.reasons if r.startswith("FAIL")]
    assert len(failed) == len(failing)
    for word, reason in zip(failing, failed, strict=True):
        assert word in reason
    assert len(verdict.reasons) == 2  # threshold + production, each spelled out
    if production is None:
        assert "PASS: no production model at x yet" in verdict.reasons


def test_most_confused_pairs_are_the_largest_cells_off_the_diagonal():
    matrix = np.array([[9, 2, 0], [5, 9, 2], [0, 0, 9]])
    assert most_confused_pairs(matrix, 2) == [(1, 0), (0, 1)]
    assert most_confused_pairs(matrix, 9) == [(1, 0), (0, 1), (1, 2)]  # only cells with images
    assert most_confused_pairs(np.diag([3, 4]), 5) == []


def test_the_cut_confusion_keeps_the_most_confused_classes_and_sums_the_others():
    labels = [f"c{i}" for i in range(100)]
    matrix = np.diag(np.full(100, 10))
    for (i, j), count in {(3, 7): 5, (50, 3): 4, (99, 0): 2, (20, 21): 1}.items():
        matrix[i, j] = count
    names, cut = confusion_of_most_confused(matrix, labels, most=5)
    assert names == ["c3", "c7", "c50", "c99", "(other 96 classes)"]
    kept = [3, 7, 50, 99]
    np.testing.assert_array_equal(cut[:4, :4], matrix[np.ix_(kept, kept)])
    assert cut[3].tolist() == [0, 0, 0, 10, 2]  # c99 -> c0, one of the others
    assert cut[4].tolist() == [0, 0, 0, 0, 961]  # 96 diagonals and c20 -> c21
    np.testing.assert_array_equal(cut.sum(axis=1)[:4], matrix.sum(axis=1)[kept])
    assert cut.sum() == matrix.sum()

    names, same = confusion_of_most_confused(matrix[:5, :5], labels[:5], most=5)
    assert names == labels[:5]
    np.testing.assert_array_equal(same, matrix[:5, :5])


def test_recall_floor_names_the_weak_classes():
    config = EvalConfig(min_class_recall=0.5)
    verdict = bless(candidate(0.9, recalls=(0.4, 0.8)), None, config)
    assert not verdict.blessed
    assert verdict.reasons[-1] == "FAIL: recall of 'c0' 0.4000 below the floor 0.5000"
    assert bless(candidate(0.9, recalls=(0.6, 0.8)), None, config).blessed


def test_a_class_without_test_images_is_named_not_failed_by_the_recall_floor():
    # Before: recall 0 for a class the split left out of test: never blessed, "recall 0".
    config = EvalConfig(min_class_recall=0.5)
    verdict = bless(candidate(1.0, recalls=(0.0, 1.0), supports=[0, 9]), None, config)
    assert verdict.blessed
    assert verdict.reasons[-1] == (
        "PASS: every class's recall >= the floor 0.5000 (not judged, no test images: 'c0')"
    )
    verdict = bless(candidate(0.9, recalls=(0.0, 0.4), supports=[0, 9]), None, config)
    assert verdict.reasons[-1] == (
        "FAIL: recall of 'c1' 0.4000 below the floor 0.5000 (not judged, no test images: 'c0')"
    )


def test_macro_f1_averages_the_classes_tested_or_predicted():
    labels = ["few", "a", "b"]
    perfect = classification_metrics(np.array([1, 2, 1]), np.eye(3)[[1, 2, 1]], labels)
    assert perfect["macro_f1"] == 1.0  # before: 2/3, 'few' (no test image) counted as 0
    assert perfect["per_class"]["few"]["support"] == 0
    wrong = classification_metrics(np.array([1, 2, 1]), np.eye(3)[[0, 2, 1]], labels)
    assert wrong["macro_f1"] == pytest.approx((0 + 2 / 3 + 1) / 3)  # 'few' predicted: counted


def test_recall_floor_over_many_classes_names_the_lowest_ten():
    recalls = [0.9] * 288 + [0.05 * (12 - i) for i in range(12)]  # c288 0.60 ... c299 0.05
    verdict = bless(candidate(0.9, recalls), None, EvalConfig(min_class_recall=0.7))
    lowest = ", ".join(f"'c{299 - i}' {0.05 * (i + 1):.4f}" for i in range(10))
    assert verdict.reasons[-1] == (
        f"FAIL: recall of 12 classes below the floor 0.7000, lowest {lowest}, ... "
        "(every class in evaluation.json)"
    )


def test_a_class_change_against_production_is_not_blessed_unless_allowed():
    """A lost class folder would ship a model that never answers that class."""
    change = changed_classes(["cat", "dog", "fox"], ["cat", "dog"], "20261126042448386")
    assert change == (
        "the classes differ from the production model's (version 20261126042448386): lost 'fox'"
    )
    note = "no production model at x yet"  # what the test of the old code was given
    refused = bless(candidate(0.9), None, EvalConfig(), note=note, class_change=change)
    assert not refused.blessed
    assert refused.reasons[-1] == (
        f"FAIL: {change}: not compared; if intended, pass --allow-class-change "
        "(else restore the source's class folders)"
    )
    allowed = bless(candidate(0.9), None, EvalConfig(allow_class_change=True), class_change=change)
    assert allowed.blessed
    assert (
        allowed.reasons[-1]
        == f"PASS: {change}: not compared; exported as --allow-class-change says"
    )


def test_a_class_change_names_lost_and_new_classes():
    assert changed_classes(["a", "b"], ["a", "b"], "1") == ""
    assert changed_classes(["a", "b"], ["a", "c"], "1").endswith("lost 'b'; new 'c'")
    assert changed_classes(["a", "b"], ["b", "a"], "1").endswith(
        "the same classes in another order"
    )
    many = changed_classes(["a"], ["a"] + [f"n{i:02d}" for i in range(12)], "1")
    assert many.endswith(
        "new 'n00', 'n01', 'n02', 'n03', 'n04', 'n05', 'n06', 'n07', 'n08', 'n09' and 2 more"
    )


def test_eval_config_bounds():
    with pytest.raises(UserError, match="--min-accuracy must be in \\[0, 1\\], got 1.5"):
        EvalConfig(min_accuracy=1.5)


def test_identical_weights_are_not_blessed_again():
    verdict = bless(candidate(0.9), {"accuracy": 0.9}, EvalConfig(), same_weights=True)
    assert not verdict.blessed
    assert (
        verdict.reasons[-1]
        == "FAIL: the same weights as the production model: nothing new to export"
    )


def test_a_class_named_unknown_is_ambiguous_only_when_the_model_abstains():
    lines = {
        (tuple(labels), threshold): bless(
            candidate(0.9), None, EvalConfig(), labels=labels, min_confidence=threshold
        ).reasons
        for labels in (["cat", "unknown"], ["cat", "Unknown"])
        for threshold in (0.0, 0.7)
    }
    assert lines[("cat", "unknown"), 0.7][-1].startswith(
        "FAIL: a class is named 'unknown', which is also the answer below the minimum "
        "confidence 0.700: rename the class"
    )
    others = [reasons for key, reasons in lines.items() if key != (("cat", "unknown"), 0.7)]
    assert all(reason.startswith("PASS") for reasons in others for reason in reasons)
