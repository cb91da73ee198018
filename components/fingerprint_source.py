"""KFP step (never cached): fingerprint what the source holds now, so the split can be cached."""

from kftransfer.components.component import kftransfer_component


@kftransfer_component()
def fingerprint_source(source: str) -> str:
    """Hashes the source's listing (paths, sizes, versions): cheap, no image is read.

    The split takes this hash as an input, so KFP's step cache reuses a split (and every
    step after it) only while the data is unchanged, and a scheduled run sees new images.

    Args:
        source: the dataset (folder, pre-split tree or CSV; local or gs://).

    Returns:
        The hex sha256 of the listing.
    """
    from kftransfer.components.core.progress import setup_logging
    from kftransfer.components.core.sources import fingerprint

    setup_logging()
    return fingerprint(source)
