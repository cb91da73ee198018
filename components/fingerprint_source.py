"""KFP step (never cached): fingerprint what the inputs hold now, so the split can be cached."""

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def fingerprint_source(source: str, backbones: str = "", weights: str = "") -> str:
    """Hashes the source's listing and the backbone and weights files' versions; reads no image.

    The split takes this hash as an input, so KFP's step cache reuses a split (and every
    step after it) only while the data, and any backbone or weights file, is unchanged:
    a scheduled run sees new images, and a weights file overwritten in place is used.

    Args:
        source: the dataset (folder, pre-split tree or CSV; local or gs://).
        backbones: the backbone, or several comma-separated (`--backbones`).
        weights: `imagenet`, `none` or a weights file (local or gs://).

    Returns:
        The hex sha256 (`input_versions.inputs_fingerprint`).
    """
    from kftransfer.components.core.input_versions import inputs_fingerprint
    from kftransfer.components.core.progress import setup_logging

    setup_logging()
    return inputs_fingerprint(source, backbones, weights)
