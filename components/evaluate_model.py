"""KFP step: evaluate head-only vs fine-tuned on the test split, report, and bless or not."""

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import EvalConfig


@kftransfer_component(EvalConfig)
def evaluate_model(
    splits: Input[Dataset],
    features: Input[Dataset],
    head: Input[Model],
    model: Input[Model],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Dataset],
    destination: str,
    min_accuracy: float,
    baseline_tolerance: float,
    min_class_recall: float,
    top_k: int,
    misclassified_examples: int,
) -> bool:
    """Evaluates on the test split and decides whether the fine-tuned model may be exported.

    Args:
        splits: the split folder.
        features: the features folder (the head-only model is evaluated on test features).
        head: the trained head folder.
        model: the fine-tuned model folder.
        metrics: test metrics of both models (and the production model's accuracy).
        confusion: the fine-tuned model's confusion matrix, for the KFP UI.
        report: the self-contained HTML report.
        evaluation: evaluation.json: every metric, the verdict and its reasons.
        destination: the export folder whose `latest` version is the production model.
        min_accuracy: see `EvalConfig`.
        baseline_tolerance: see `EvalConfig`.
        min_class_recall: see `EvalConfig`.
        top_k: see `EvalConfig`.
        misclassified_examples: see `EvalConfig`.

    Returns:
        Whether the fine-tuned model passed every check (blessed), as the output "Output"
        (kfp.local resolves conditions on single outputs only).
    """
    from kftransfer.components.core import evaluate as core
    from kftransfer.components.core import heads, storage
    from kftransfer.components.core.config import EvalConfig
    from kftransfer.components.core.fine_tune import MODEL_FILE
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.report import render_report

    setup_logging()
    config = EvalConfig(
        min_accuracy=min_accuracy,
        baseline_tolerance=baseline_tolerance,
        min_class_recall=min_class_recall,
        top_k=top_k,
        misclassified_examples=misclassified_examples,
    )
    result = core.evaluate(
        splits.path,
        features.path,
        storage.join(head.path, heads.HEAD_FILE),
        storage.join(model.path, MODEL_FILE),
        destination,
        config,
    )
    for name, stage in [("head", result.head), ("fine_tuned", result.fine_tuned),
                        ("production", result.production)]:  # fmt: skip
        for key in ("accuracy", "top_k_accuracy", "macro_f1", "log_loss"):
            if stage and stage[key] is not None:
                metrics.log_metric(f"{name}_{key}", stage[key])
    metrics.log_metric("blessed", float(result.verdict.blessed))
    confusion.log_confusion_matrix(result.labels, result.fine_tuned["confusion"])
    storage.write_json(metrics.path, {"accuracy": result.fine_tuned["accuracy"]})
    storage.write_json(confusion.path, result.fine_tuned["confusion"])
    storage.write_json(evaluation.path, result.to_json())
    histories = {
        "head training": storage.read_json(storage.join(head.path, heads.HISTORY_FILE)),
        "fine-tuning": storage.read_json(storage.join(model.path, heads.HISTORY_FILE)),
    }
    stats = storage.read_json(storage.join(splits.path, "stats.json"))
    storage.write_text(report.path, render_report(result, histories, stats))
    return result.verdict.blessed
