"""KFP step: evaluate head-only vs fine-tuned (and its TFLite model) on test, report, bless."""

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
    label_issues: Output[Dataset],
    tflite_model: Output[Model],
    export_uri: str,
    cache_uri: str,
) -> bool:
    """Evaluates on the test split and decides whether the fine-tuned model may be exported.

    Args:
        splits: the split folder.
        features: the features folder (the head-only model is evaluated on test features).
        head: the trained head's stage folder.
        model: the fine-tuned model's stage folder.
        metrics: test metrics of both models (and the production model's).
        confusion: the fine-tuned model's confusion matrix, for the KFP UI.
        report: the self-contained HTML report.
        evaluation: every metric, the verdict and its reasons (JSON); its metadata holds
            the verdict and the reasons.
        label_issues: likely-mislabelled train/validation images (CSV: uri, given,
            suggested, score), most likely first.
        tflite_model: with --tflite, the judged model.tflite and its judgement (tflite.json);
            the export step copies it. Without, tflite.json says mode none.

    Returns:
        Whether the fine-tuned model passed every check (blessed), as the output "Output"
        (kfp.local resolves conditions on single outputs only).
    """
    from kftransfer.components.core.config import EvalConfig
    from kftransfer.components.core.evaluate import evaluate_stages
    from kftransfer.components.core.evaluate_tflite import judge_tflite
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish, publish_confusion
    from kftransfer.components.core.report import write_outputs

    setup_logging()
    config = EvalConfig.from_params(locals())
    stages = (splits.path, features.path, head.path, model.path)
    result = evaluate_stages(*stages, export_uri, config, cache_uri)
    result = judge_tflite(result, splits.path, model.path, config, tflite_model.path)
    curves = {"head training": head.path, "fine-tuning": model.path}
    write_outputs(result, evaluation.path, report.path, splits.path, curves, label_issues.path)
    publish(metrics, result.metrics_summary())
    publish(evaluation, result.verdict_summary(), write_file=False)
    publish(label_issues, {"count": len(result.label_issues["issues"])}, write_file=False)
    publish_confusion(confusion, result.labels, result.fine_tuned["confusion"])
    return result.verdict.blessed
