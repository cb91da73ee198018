"""KFP step: validate the images of a source and split them into train/validation/test."""

from kfp.dsl import Dataset, Output

from kftransfer.components.component import kftransfer_component
from kftransfer.components.core.config import SplitConfig


@kftransfer_component(SplitConfig)
def split_data(
    source: str, splits: Output[Dataset], source_fingerprint: str = "", cache_uri: str = ""
):
    """Validates and splits the labelled images at `source` (local path or gs:// URI).

    Args:
        source: a folder of class folders, a train/validation/test tree, or a uri,label CSV.
        splits: output folder: train.csv, validation.csv, test.csv, labels.json, stats.json.
        source_fingerprint: what the source held when listed (fingerprint_source); part of
            the step's cache key, recorded in stats.json.
    """
    from kftransfer.components.core.config import SplitConfig
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish
    from kftransfer.components.core.split import split_to_folder

    setup_logging()
    config = SplitConfig.from_params(locals())
    summary = split_to_folder(source, splits.path, config, source_fingerprint, cache_uri)
    publish(splits, summary, write_file=False)
