"""KFP step: merge the features of parallel extraction pods into one features folder."""

from kfp.dsl import Dataset, Input, Output

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def merge_features(parts: Input[list[Dataset]], features: Output[Dataset]):
    """Copies every part's shards into one folder with one manifest.

    Args:
        parts: the features folders of the extraction pods (dsl.Collected).
        features: the merged features folder.
    """
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.publish import publish
    from kftransfer.components.core.shards import manifest_summary, merge_parts

    setup_logging()
    manifest = merge_parts([part.path for part in parts], features.path)
    publish(features, {**manifest_summary(manifest), "parts": len(parts)}, write_file=False)
