"""The kftransfer DAG: split -> extract -> train head -> fine-tune -> evaluate -> export.

A cheap, never-cached `fingerprint_source` step comes first: the split (and so every step
after it) is a KFP cache hit only while the source holds the same files.

`build_pipeline(settings)` makes the pipeline for a set of compile-time Kubernetes settings
(GPUs, nodes, resources, retries, parallel extraction); `transfer_learning` is the one
with the defaults. Every run-time parameter's default comes from the hyper-parameter
dataclasses in `components/core/config.py`.
"""

import os
import tempfile

import yaml
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
from kftransfer.components.fingerprint_source import fingerprint_source
from kftransfer.components.merge_features import merge_features
from kftransfer.components.split_data import split_data
from kftransfer.components.train_head import train_head
from kftransfer.pipelines.settings import ClusterSettings, configure

PIPELINE_NAME = "kftransfer"
SPLIT, EXTRACT, HEAD, TUNE = SplitConfig(), ExtractConfig(), HeadConfig(), FineTuneConfig()
EVAL = EvalConfig()

# Run-time parameters that are locations, not hyper-parameters (help for the CLI).
LOCATION_HELP = {
    "source": "Folder of class folders, train/validation/test tree, or uri,label CSV.",
    "cache_uri": "Feature cache root (local or gs://); empty for none.",
    "checkpoint_uri": "Resume-after-preemption checkpoints (local or gs://); empty for none.",
    "tensorboard_uri": "TensorBoard log folder (local or gs://); empty for none.",
    "export_uri": "Export folder (local or gs://); its latest version is the production model.",
    "tflite": "Also export model.tflite (with a parity check).",
}


def _extract(split, settings: ClusterSettings, **params):
    """One extraction step, or a ParallelFor of `extract_parts` pods and a merge step."""
    parts = settings.extract_parts
    if parts <= 1:
        task = extract_bottlenecks(
            splits=split.outputs["splits"], part_index=0, part_count=1, **params
        )
        return configure(task.set_display_name("extract bottlenecks"), "extract", settings)
    with dsl.ParallelFor(
        items=list(range(parts)), parallelism=parts, name="extract-parts"
    ) as index:
        task = extract_bottlenecks(
            splits=split.outputs["splits"], part_index=index, part_count=parts, **params
        )
        configure(task.set_display_name("extract bottlenecks (part)"), "extract", settings)
    merged = merge_features(parts=dsl.Collected(task.outputs["features"]))
    return configure(merged.set_display_name("merge features"), "split", settings)


def build_pipeline(settings: ClusterSettings = ClusterSettings()):  # noqa: B008 - frozen
    """The transfer-learning pipeline for these compile-time settings."""

    @dsl.pipeline(name=PIPELINE_NAME, description="Image-classification transfer learning.")
    def transfer_learning(
        source: str,
        val_fraction: float = SPLIT.val_fraction,
        test_fraction: float = SPLIT.test_fraction,
        seed: int = SPLIT.seed,
        min_images_per_class: int = SPLIT.min_images_per_class,
        min_image_side: int = SPLIT.min_image_side,
        max_image_pixels: int = SPLIT.max_image_pixels,
        backbone: str = EXTRACT.backbone,
        weights: str = EXTRACT.weights,
        image_size: int = EXTRACT.image_size,
        pooling: str = EXTRACT.pooling,
        batch_size: int = EXTRACT.batch_size,
        feature_dtype: str = EXTRACT.feature_dtype,
        feature_layer: str = EXTRACT.feature_layer,
        preprocessing: str = EXTRACT.preprocessing,
        cache_uri: str = "",
        head_normalize: bool = HEAD.head_normalize,
        head_units: str = HEAD.head_units,
        head_dropout: float = HEAD.head_dropout,
        head_optimizer: str = HEAD.head_optimizer,
        head_learning_rate: float = HEAD.head_learning_rate,
        head_epochs: int = HEAD.head_epochs,
        head_batch_size: int = HEAD.head_batch_size,
        head_patience: int = HEAD.head_patience,
        class_weight: str = HEAD.class_weight,
        unfreeze: str = TUNE.unfreeze,
        fine_tune_optimizer: str = TUNE.fine_tune_optimizer,
        fine_tune_learning_rate: float = TUNE.fine_tune_learning_rate,
        momentum: float = TUNE.momentum,
        fine_tune_epochs: int = TUNE.fine_tune_epochs,
        fine_tune_batch_size: int = TUNE.fine_tune_batch_size,
        fine_tune_patience: int = TUNE.fine_tune_patience,
        augmentation: str = TUNE.augmentation,
        mixed_precision: str = TUNE.mixed_precision,
        checkpoint_uri: str = "",
        tensorboard_uri: str = "",
        min_accuracy: float = EVAL.min_accuracy,
        baseline_tolerance: float = EVAL.baseline_tolerance,
        min_class_recall: float = EVAL.min_class_recall,
        top_k: int = EVAL.top_k,
        misclassified_examples: int = EVAL.misclassified_examples,
        export_uri: str = "",
        tflite: bool = False,
    ):
        """Transfer learning on the labelled images at `source`; see `kftransfer run --help`.

        Args:
            source: folder of class folders, train/validation/test tree, or uri,label CSV.
            val_fraction: fraction of each class for validation.
            test_fraction: fraction of each class for test.
            seed: seed of the split and of training.
            min_images_per_class: fewest valid images a class may have.
            min_image_side: images with a shorter side are skipped.
            max_image_pixels: images with more pixels are skipped (decompression bombs).
            backbone: registry name or .keras URI of the backbone.
            weights: imagenet, none, or a weights file URI.
            image_size: input size in pixels (0: the backbone's default).
            pooling: feature pooling (avg, max, flatten).
            batch_size: images per extraction batch.
            feature_dtype: stored feature dtype (float16 or float32).
            feature_layer: layer a custom .keras backbone is cut at ('' = last pooling).
            preprocessing: preprocessing of a custom .keras backbone.
            cache_uri: feature cache root (local or gs://); empty for none.
            head_normalize: standardise features inside the head.
            head_units: hidden Dense widths of the head, comma-separated.
            head_dropout: dropout of the head.
            head_optimizer: optimizer of head training.
            head_learning_rate: learning rate of head training.
            head_epochs: most epochs of head training.
            head_batch_size: feature rows per head training step.
            head_patience: epochs without a better validation loss before the head stops.
            class_weight: none or balanced.
            unfreeze: which backbone layers fine-tuning trains.
            fine_tune_optimizer: sgd, adam, rmsprop or adamw.
            fine_tune_learning_rate: learning rate of fine-tuning.
            momentum: momentum of the sgd optimizer.
            fine_tune_epochs: most epochs of fine-tuning.
            fine_tune_batch_size: images per step (per GPU).
            fine_tune_patience: epochs without a better validation loss before stopping.
            augmentation: training-input augmentation of fine-tuning.
            mixed_precision: auto, on or off.
            checkpoint_uri: resume-after-preemption checkpoints; empty for none.
            tensorboard_uri: TensorBoard log folder; empty for none.
            min_accuracy: fine-tuned test accuracy required to export.
            baseline_tolerance: how far below the production model's accuracy still passes.
            min_class_recall: every class's test recall must reach this (0 = off).
            top_k: k of the top-k accuracy.
            misclassified_examples: misclassified test images shown in the report.
            export_uri: export folder; its latest version is the production model.
            tflite: also export model.tflite.
        """
        listing = fingerprint_source(source=source)
        configure(listing.set_display_name("fingerprint source"), "fingerprint", settings)
        split = split_data(
            source=source,
            source_fingerprint=listing.output,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
            min_images_per_class=min_images_per_class,
            min_image_side=min_image_side,
            max_image_pixels=max_image_pixels,
        )
        configure(split.set_display_name("split data"), "split", settings)
        features = _extract(
            split,
            settings,
            cache_uri=cache_uri,
            backbone=backbone,
            weights=weights,
            image_size=image_size,
            pooling=pooling,
            batch_size=batch_size,
            feature_dtype=feature_dtype,
            feature_layer=feature_layer,
            preprocessing=preprocessing,
        ).outputs["features"]
        head = train_head(
            features=features,
            checkpoint_uri=checkpoint_uri,
            tensorboard_uri=tensorboard_uri,
            head_normalize=head_normalize,
            head_units=head_units,
            head_dropout=head_dropout,
            head_optimizer=head_optimizer,
            head_learning_rate=head_learning_rate,
            head_epochs=head_epochs,
            head_batch_size=head_batch_size,
            head_patience=head_patience,
            class_weight=class_weight,
            seed=seed,
        )
        configure(head.set_display_name("train head"), "head", settings)
        tuned = fine_tune(
            splits=split.outputs["splits"],
            features=features,
            head=head.outputs["head"],
            checkpoint_uri=checkpoint_uri,
            tensorboard_uri=tensorboard_uri,
            unfreeze=unfreeze,
            fine_tune_optimizer=fine_tune_optimizer,
            fine_tune_learning_rate=fine_tune_learning_rate,
            momentum=momentum,
            fine_tune_epochs=fine_tune_epochs,
            fine_tune_batch_size=fine_tune_batch_size,
            fine_tune_patience=fine_tune_patience,
            augmentation=augmentation,
            mixed_precision=mixed_precision,
            seed=seed,
        )
        configure(tuned.set_display_name("fine-tune"), "fine_tune", settings)
        evaluation = evaluate_model(
            splits=split.outputs["splits"],
            features=features,
            head=head.outputs["head"],
            model=tuned.outputs["model"],
            destination=export_uri,
            min_accuracy=min_accuracy,
            baseline_tolerance=baseline_tolerance,
            min_class_recall=min_class_recall,
            top_k=top_k,
            misclassified_examples=misclassified_examples,
        )
        configure(evaluation.set_display_name("evaluate"), "evaluate", settings)
        with dsl.If(evaluation.outputs["Output"] == True, "blessed"):  # noqa: E712 - KFP condition
            with dsl.If(export_uri != "", "export destination given"):
                exported = export_model(
                    splits=split.outputs["splits"],
                    features=features,
                    head=head.outputs["head"],
                    model=tuned.outputs["model"],
                    evaluation=evaluation.outputs["evaluation"],
                    destination=export_uri,
                    tflite=tflite,
                )
                configure(exported.set_display_name("export"), "export", settings)

    return transfer_learning


transfer_learning = build_pipeline()


def compile_pipeline(
    output_path: str,
    settings: ClusterSettings = ClusterSettings(),  # noqa: B008 - frozen
    pipeline_root: str = "",
) -> dict:
    """Compiles the pipeline to a KFP v2 YAML package; returns its pipeline spec.

    Every executor gets `settings.resolved_image()` (the components declare the default).
    A `pipeline_root` (e.g. `gs://bucket/kfp`) becomes the package's default artifact root.
    """
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "pipeline.yaml")
        compiler.Compiler().compile(build_pipeline(settings), package_path=raw)
        with open(raw) as file:
            documents = list(yaml.safe_load_all(file))
    for executor in documents[0]["deploymentSpec"]["executors"].values():
        executor["container"]["image"] = settings.resolved_image()
    if pipeline_root:
        documents[0]["defaultPipelineRoot"] = pipeline_root
    with open(output_path, "w") as out:
        yaml.safe_dump_all(documents, out, sort_keys=False)
    return documents[0]
