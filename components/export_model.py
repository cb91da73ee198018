"""KFP step: export the blessed model as a new version and move `latest` to it."""

from kfp.dsl import Dataset, Input, Model, Output

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def export_model(
    splits: Input[Dataset],
    features: Input[Dataset],
    head: Input[Model],
    model: Input[Model],
    evaluation: Input[Dataset],
    tflite_model: Input[Model],
    exported: Output[Model],
    export_uri: str,
):
    """Writes EXPORT_URI/<version>/ (SavedModel, model.keras, labels, model card), then latest.

    The `exported` artifact stays where KFP put it (the KFP backend refuses an output URI
    outside the run's root): it records the version and its URI, and with --tflite the
    TFLite model's test accuracy and loss against the SavedModel, as JSON and metadata.

    Args:
        splits: the split folder (labels, data counts).
        features: the features folder (backbone settings).
        head: the trained head's stage folder (its hyper-parameters).
        model: the fine-tuned model's stage folder.
        evaluation: the evaluation from evaluate_model.
        tflite_model: the TFLite model evaluate_model judged (copied when it made one).
        exported: the new version's name and URI.
    """
    from kftransfer.components.core.export import export_run
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish

    setup_logging()
    stages = (splits.path, features.path, head.path, model.path)
    publish(exported, export_run(*stages, evaluation.path, tflite_model.path, export_uri))
