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
    from kftransfer.components.core.shards import merge_parts

    setup_logging()
    manifest = merge_parts([part.path for part in parts], features.path)
    for split, info in manifest["splits"].items():
        features.metadata[f"{split}_rows"] = info["rows"]
    features.metadata["extracted"] = sum(s["extracted"] for s in manifest["splits"].values())
    features.metadata["reused"] = sum(s["reused"] for s in manifest["splits"].values())
    features.metadata.update(backbone=manifest["backbone"], dim=manifest["dim"], parts=len(parts))
