"""The kftransfer DAG: split -> extract bottlenecks (more steps join as they land)."""

from kfp import compiler, dsl

from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.extract_bottlenecks import extract_bottlenecks
from kftransfer.components.split_data import split_data

PIPELINE_NAME = "kftransfer"
SPLIT = SplitConfig()
EXTRACT = ExtractConfig()


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
):
    """Transfer learning on the labelled images at `source`.

    Args:
        source: folder of class folders, train/validation/test tree, or uri,label CSV.
        val_fraction: fraction of each class for validation.
        test_fraction: fraction of each class for test.
        seed: seed of the content-hash split.
        min_images_per_class: fewest valid images a class may have.
        backbone: registry name or .keras URI of the backbone.
        weights: imagenet, none, or a weights file URI.
        image_size: input size in pixels (0: the backbone's default).
        pooling: feature pooling (avg, max, flatten).
        cache_uri: feature cache root (local or gs://); empty for none.
    """
    split = split_data(
        source=source,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        min_images_per_class=min_images_per_class,
    ).set_display_name("split data")
    extract_bottlenecks(
        splits=split.outputs["splits"],
        cache_uri=cache_uri,
        part_index=0,
        part_count=1,
        backbone=backbone,
        weights=weights,
        image_size=image_size,
        pooling=pooling,
    ).set_display_name("extract bottlenecks")


def compile_pipeline(output_path: str) -> None:
    """Compiles the pipeline to a KFP v2 YAML package at `output_path`."""
    compiler.Compiler().compile(transfer_learning, package_path=output_path)
