"""What an evaluation found: each model's test metrics, the trust checks and the verdict.

`evaluate.evaluate_stages` makes it; the report, the TFLite judgement, the KFP step's
metrics and `evaluation.json` (the exported record a later run compares with) read it.
"""

from dataclasses import asdict, dataclass, field

from kftransfer.components.core.blessing import Verdict

SUMMARY_METRICS = ("accuracy", "top_k_accuracy", "macro_f1", "log_loss")


@dataclass
class Evaluation:
    """Metrics of every model on the test split, the verdict, and the worst mistakes.

    Attributes:
        labels: class names in model output order.
        head: the head-only model's test metrics (`metrics.classification_metrics`).
        fine_tuned: the fine-tuned model's.
        production: the production model's on the same images, or None.
        production_version: the production version compared with (or found), or None.
        verdict: blessed or not, with every reason.
        misclassified: the fine-tuned model's most confident mistakes.
        training: each stage's training summary (validation accuracy, epochs, ...).
        inputs: the artifacts evaluated (split, features, head and model folders).
        calibration: per model ("fine_tuned", "head"), `trust.calibrate`'s result.
        label_issues: `trust.find_label_issues` on train and validation.
        near_duplicates: `trust.find_near_duplicates`, and `accuracy_without_leaked`.
        test_time_flip: the fine-tuned model was judged (and is exported) with flip averaging.
        split_rule: the split's `layout.split_rule` (a later warm start or comparison
            with this model, once exported, needs the same).
        feature_spec: the backbone setup (`layout.FeatureSpec`) the model was built on (a
            later warm start from it needs the same network and inputs).
        tflite: the TFLite model's judgement (`tflite.convert_and_measure`), or None
            without `--tflite` (`evaluate_tflite.judge_tflite` adds it).
    """

    labels: list[str]
    head: dict
    fine_tuned: dict
    production: dict | None
    production_version: str | None
    verdict: Verdict
    misclassified: list[dict]
    training: dict[str, dict]
    inputs: dict[str, str]
    calibration: dict[str, dict]
    label_issues: dict
    near_duplicates: dict
    test_time_flip: bool = False
    split_rule: dict = field(default_factory=dict)
    feature_spec: dict = field(default_factory=dict)
    tflite: dict | None = None

    def to_json(self) -> dict:
        """A JSON-able dict of everything."""
        return asdict(self)

    def metrics_summary(self) -> dict[str, float]:
        """The headline test metrics of every model, flat (`fine_tuned_accuracy`, ...)."""
        summary = {}
        for name, stage in (
            ("head", self.head),
            ("fine_tuned", self.fine_tuned),
            ("production", self.production),
        ):
            for key in SUMMARY_METRICS:
                if stage and stage[key] is not None:
                    summary[f"{name}_{key}"] = stage[key]
        tuned = self.calibration["fine_tuned"]
        if self.tflite and "error" not in self.tflite:  # converted (see tflite_figures)
            summary["tflite_accuracy"] = self.tflite["accuracy"]
            summary["tflite_drop_points"] = self.tflite["drop_points"]
        return {
            **summary,
            "ece_before": tuned["ece_before"],
            "ece_after": tuned["ece_after"],
            "temperature": tuned["temperature"],
            "min_confidence": tuned["min_confidence"],
            "label_issues": len(self.label_issues["issues"]),
            "leaked_test_images": self.near_duplicates["leaked_count"],
            "accuracy_without_leaked": self.near_duplicates["accuracy_without_leaked"],
            "blessed": float(self.verdict.blessed),
        }

    def verdict_summary(self) -> dict:
        """The verdict with every reason, and the production version compared with."""
        return {
            "blessed": self.verdict.blessed,
            "reasons": self.verdict.reasons,
            "production_version": self.production_version or "",
        }
