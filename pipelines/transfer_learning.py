"""The kftransfer DAG: split -> extract -> train head -> fine-tune -> evaluate -> export."""

from kfp import compiler, dsl

from kftransfer.components.core.config import (
    EvalConfig,
    ExtractConfig,
    FineTuneConfig,
    HeadConfig,
    SplitConfig,
)
from kftransfer.components.evaluate_model import evaluate_model
from kftransfer.components.export_model import export_model
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.fine_tune import fine_tune
from kftransfer.components.split_data import split_data
from kftransfer.components.train_head import train_head

PIPELINE_NAME = "kftransfer"
SPLIT, EXTRACT, HEAD, TUNE = SplitConfig(), ExtractConfig(), HeadConfig(), FineTuneConfig()
EVAL = EvalConfig()


@dsl.pipeline(name=PIPELINE_NAME, description="Image-classification transfer learning.")
def transfer_learning(
    source: str,
    val_fraction: float = SPLIT.val_fraction,
    test_fraction: float = SPLIT.test_fraction,
    seed: int = SPLIT.seed,
    min_images_per_class: int = SPLIT.min_images_per_class,
    backbone: str = EXTRACT.backbone,
    weights: str = EXTRACT.weights,
    image_size: int = EXTRACT.image_size,
    pooling: str = EXTRACT.pooling,
    cache_uri: str = "",
    head_epochs: int = HEAD.head_epochs,
    head_learning_rate: float = HEAD.head_learning_rate,
    fine_tune_epochs: int = TUNE.fine_tune_epochs,
    fine_tune_learning_rate: float = TUNE.fine_tune_learning_rate,
    unfreeze: str = TUNE.unfreeze,
    augmentation: str = TUNE.augmentation,
    checkpoint_uri: str = "",
    min_accuracy: float = EVAL.min_accuracy,
    baseline_tolerance: float = EVAL.baseline_tolerance,
    min_class_recall: float = EVAL.min_class_recall,
    export_uri: str = "",
    tflite: bool = False,
):
    """Transfer learning on the labelled images at `source`.

    Args:
        source: folder of class folders, train/validation/test tree, or uri,label CSV.
        val_fraction: fraction of each class for validation.
        test_fraction: fraction of each class for test.
        seed: seed of the split and of training.
        min_images_per_class: fewest valid images a class may have.
        backbone: registry name or .keras URI of the backbone.
        weights: imagenet, none, or a weights file URI.
        image_size: input size in pixels (0: the backbone's default).
        pooling: feature pooling (avg, max, flatten).
        cache_uri: feature cache root (local or gs://); empty for none.
        head_epochs: most epochs of head training.
        head_learning_rate: learning rate of head training.
        fine_tune_epochs: most epochs of fine-tuning.
        fine_tune_learning_rate: learning rate of fine-tuning.
        unfreeze: which backbone layers fine-tuning trains.
        augmentation: training-input augmentation of fine-tuning.
        checkpoint_uri: resume-after-preemption checkpoints (local or gs://); empty for none.
        min_accuracy: fine-tuned test accuracy required to export.
        baseline_tolerance: how far below the production model's accuracy still passes.
        min_class_recall: every class's test recall must reach this (0 = off).
        export_uri: export folder (local or gs://); its latest version is the production
            model; empty: evaluate only.
        tflite: also export model.tflite.
    """
    split = split_data(
        source=source,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        min_images_per_class=min_images_per_class,
    ).set_display_name("split data")
    features = extract_bottlenecks(
        splits=split.outputs["splits"],
        cache_uri=cache_uri,
        part_index=0,
        part_count=1,
        backbone=backbone,
        weights=weights,
        image_size=image_size,
        pooling=pooling,
    ).set_display_name("extract bottlenecks")
    head = train_head(
        features=features.outputs["features"],
        checkpoint_uri=checkpoint_uri,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tensorboard_uri="",
        head_epochs=head_epochs,
        head_learning_rate=head_learning_rate,
        seed=seed,
    ).set_display_name("train head")
    tuned = fine_tune(
        splits=split.outputs["splits"],
        features=features.outputs["features"],
        head=head.outputs["head"],
        checkpoint_uri=checkpoint_uri,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        tensorboard_uri="",
        fine_tune_epochs=fine_tune_epochs,
        fine_tune_learning_rate=fine_tune_learning_rate,
        unfreeze=unfreeze,
        augmentation=augmentation,
        seed=seed,
    ).set_display_name("fine-tune")
    evaluation = evaluate_model(
        splits=split.outputs["splits"],
        features=features.outputs["features"],
        head=head.outputs["head"],
        model=tuned.outputs["model"],
        destination=export_uri,
        min_accuracy=min_accuracy,
        baseline_tolerance=baseline_tolerance,
        min_class_recall=min_class_recall,
    ).set_display_name("evaluate")
    with dsl.If(evaluation.outputs["Output"] == True, "blessed"):  # noqa: E712 - KFP condition
        with dsl.If(export_uri != "", "export destination given"):
            export_model(
                splits=split.outputs["splits"],
                features=features.outputs["features"],
                head=head.outputs["head"],
                model=tuned.outputs["model"],
                evaluation=evaluation.outputs["evaluation"],
                destination=export_uri,
                tflite=tflite,
            ).set_display_name("export")


def compile_pipeline(output_path: str) -> None:
    """Compiles the pipeline to a KFP v2 YAML package at `output_path`."""
    compiler.Compiler().compile(transfer_learning, package_path=output_path)
