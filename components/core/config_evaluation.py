"""Parameters of judging a candidate: the thresholds, the trust checks, its TFLite model."""

from dataclasses import dataclass
from typing import ClassVar

from kftransfer.components.core.config_base import (
    SEED_HELP,
    Config,
    at_least,
    param,
    range_problems,
)

TFLITE_MODES = ("none", "float", "fp16", "dynamic", "int8")


@dataclass(frozen=True)
class EvalConfig(Config):
    """How the candidate is judged against the threshold and the production model."""

    TITLE: ClassVar[str] = "Evaluation and blessing"

    min_accuracy: float = param(0.0, "Fine-tuned test accuracy required to export.")
    baseline_tolerance: float = param(
        0.01, "Test accuracy this far below the production model's still counts as good enough."
    )
    min_class_recall: float = param(0.0, "Every class's test recall must reach this (0 = off).")
    allow_class_change: bool = param(
        False,
        "Export a model whose classes differ from the production model's (a class added, "
        "removed or renamed). Off, such a model is not blessed: a class folder lost from the "
        "source would otherwise ship a model that never answers that class.",
    )
    skill_alpha: float = param(
        0.01,
        "Significance level of the no-skill gate: the candidate must beat always answering "
        "the test split's most frequent class (one-sided exact binomial test) at this level.",
    )
    min_confidence: float = param(
        0.0,
        "The exported model answers 'unknown' when its calibrated confidence is below this "
        "(0 = always answers a class).",
    )
    target_precision: float = param(
        0.0,
        "Choose --min-confidence as the lowest whose answers reach this accuracy on "
        "validation (0 = off; overrides --min-confidence).",
    )
    label_issue_folds: int = param(
        5, "Folds of the label-issue search on cached features (0 = no search)."
    )
    near_duplicate_threshold: float = param(
        0.95, "Cosine similarity of features from which two images are near-duplicates."
    )
    test_time_flip: bool = param(
        False,
        "Average each prediction over the image and its mirror image, in evaluation and in "
        "the exported model (twice the inference cost).",
    )
    tflite: str = param(
        "none",
        "Also export model.tflite: none, float, fp16, dynamic (int8 weights) or int8 "
        "(weights and activations, calibrated on train images); judged on the test split.",
    )
    max_tflite_drop: float = param(
        1.0,
        "Most test-accuracy points model.tflite may lose against the model; more is not blessed.",
    )
    top_k: int = param(3, "k of the reported top-k accuracy.")
    misclassified_examples: int = param(24, "Misclassified test images shown in the report.")
    seed: int = param(0, SEED_HELP)

    def problems(self) -> list[str]:
        """Accuracies and tolerances in [0, 1], k >= 1, counts and the TFLite drop >= 0."""
        names = (
            "min_accuracy",
            "baseline_tolerance",
            "min_class_recall",
            "min_confidence",
            "target_precision",
            "near_duplicate_threshold",
        )
        return (
            range_problems(self, names, 0, 1, closed=True)
            + (
                []
                if 0 < self.skill_alpha < 1
                else [f"--skill-alpha must be in (0, 1), got {self.skill_alpha}"]
            )
            + at_least(self, 1, "top_k")
            + at_least(self, 0, "misclassified_examples", "label_issue_folds", "max_tflite_drop")
            + (
                []
                if self.tflite in TFLITE_MODES
                else [f"--tflite {self.tflite!r}: use one of {', '.join(TFLITE_MODES)}"]
            )
        )
