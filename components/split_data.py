"""KFP step: validate the images of a source and split them into train/validation/test."""

from kfp.dsl import Dataset, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import SplitConfig


@kftransfer_component(SplitConfig)
def split_data(
    source: str,
    splits: Output[Dataset],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    min_images_per_class: int,
    min_image_side: int,
    max_image_pixels: int,
    source_fingerprint: str = "",
):
    """Validates and splits the labelled images at `source` (local path or gs:// URI).

    Args:
        source: a folder of class folders, a train/validation/test tree, or a uri,label CSV.
        splits: output folder: train.csv, validation.csv, test.csv, labels.json, stats.json.
        val_fraction: see `SplitConfig`.
        test_fraction: see `SplitConfig`.
        seed: see `SplitConfig`.
        min_images_per_class: see `SplitConfig`.
        min_image_side: see `SplitConfig`.
        max_image_pixels: see `SplitConfig`.
        source_fingerprint: what the source held when listed (fingerprint_source); part of
            the step's cache key, recorded in stats.json.
    """
    from kftransfer.components.core import split as core
    from kftransfer.components.core.config import SplitConfig
    from kftransfer.components.core.progress import setup_logging

    setup_logging()
    config = SplitConfig(
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        min_images_per_class=min_images_per_class,
        min_image_side=min_image_side,
        max_image_pixels=max_image_pixels,
    )
    result = core.split_dataset(source, config)
    result.stats["source_fingerprint"] = source_fingerprint
    core.write_split(result, splits.path)
    splits.metadata.update(result.stats["totals"])
    splits.metadata["classes"] = len(result.labels)
    splits.metadata["skipped"] = len(result.stats["skipped"])
