"""KFP step: run a frozen backbone over every image once and store the features."""

from kfp.dsl import Dataset, Input, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import ExtractConfig


@kftransfer_component(ExtractConfig)
def extract_bottlenecks(
    splits: Input[Dataset],
    features: Output[Dataset],
    cache_uri: str,
    part_index: int,
    part_count: int,
    backbone: str,
    weights: str,
    image_size: int,
    pooling: str,
    batch_size: int,
    feature_dtype: str,
    feature_layer: str,
    preprocessing: str,
):
    """Extracts bottleneck features of the train, validation and test splits.

    Args:
        splits: the split folder from split_data.
        features: output folder: manifest.json and <split>/NNNNN.npz shards.
        cache_uri: feature cache root (local or gs://); empty for no cache.
        part_index: which part of the rows to extract (0-based), for parallel pods.
        part_count: into how many parts the rows are divided.
        backbone: see `ExtractConfig`.
        weights: see `ExtractConfig`.
        image_size: see `ExtractConfig`.
        pooling: see `ExtractConfig`.
        batch_size: see `ExtractConfig`.
        feature_dtype: see `ExtractConfig`.
        feature_layer: see `ExtractConfig`.
        preprocessing: see `ExtractConfig`.
    """
    from kftransfer.components.core.config import ExtractConfig
    from kftransfer.components.core.features import extract_features
    from kftransfer.components.core.progress import setup_logging

    setup_logging()
    config = ExtractConfig(
        backbone=backbone,
        weights=weights,
        image_size=image_size,
        pooling=pooling,
        batch_size=batch_size,
        feature_dtype=feature_dtype,
        feature_layer=feature_layer,
        preprocessing=preprocessing,
    )
    manifest = extract_features(
        splits.path, features.path, config, cache_uri, (int(part_index), int(part_count))
    )
    for split, info in manifest["splits"].items():
        features.metadata[f"{split}_rows"] = info["rows"]
    features.metadata["extracted"] = sum(s["extracted"] for s in manifest["splits"].values())
    features.metadata["reused"] = sum(s["reused"] for s in manifest["splits"].values())
    features.metadata.update(backbone=manifest["backbone"], dim=manifest["dim"])
