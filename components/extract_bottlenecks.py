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
):
    """Extracts bottleneck features of the train, validation and test splits.

    Args:
        splits: the split folder from split_data.
        features: output folder: manifest.json and <split>/NNNNN.npz shards.
        part_index: which part of the rows to extract (0-based), for parallel pods.
        part_count: into how many parts the rows are divided.
    """
    from kftransfer.components.core.config import ExtractConfig
    from kftransfer.components.core.features import extract_features
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish
    from kftransfer.components.core.shards import manifest_summary

    setup_logging()
    config = ExtractConfig.from_params(locals())
    part = (int(part_index), int(part_count))
    manifest = extract_features(splits.path, features.path, config, cache_uri, part)
    publish(features, manifest_summary(manifest), write_file=False)
