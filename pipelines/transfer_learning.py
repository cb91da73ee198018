"""The kftransfer DAG: split (more steps join as they land)."""

from kfp import compiler, dsl

from kftransfer.components.core.config import SplitConfig
from kftransfer.components.split_data import split_data

PIPELINE_NAME = "kftransfer"
SPLIT = SplitConfig()


@dsl.pipeline(name=PIPELINE_NAME, description="Image-classification transfer learning.")
def transfer_learning(
    source: str,
    val_fraction: float = SPLIT.val_fraction,
    test_fraction: float = SPLIT.test_fraction,
    seed: int = SPLIT.seed,
    min_images_per_class: int = SPLIT.min_images_per_class,
):
    """Transfer learning on the labelled images at `source`.

    Args:
        source: folder of class folders, train/validation/test tree, or uri,label CSV.
        val_fraction: fraction of each class for validation.
        test_fraction: fraction of each class for test.
        seed: seed of the content-hash split.
        min_images_per_class: fewest valid images a class may have.
    """
    split_data(
        source=source,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        min_images_per_class=min_images_per_class,
    ).set_display_name("split data")


def compile_pipeline(output_path: str) -> None:
    """Compiles the pipeline to a KFP v2 YAML package at `output_path`."""
    compiler.Compiler().compile(transfer_learning, package_path=output_path)
