"""What a run's file inputs hold now, as one hash: the source, the backbone and weights files.

KFP's step cache keys a step by its inputs' values. For a file named by a path that is
its path: a weights file or `.keras` backbone overwritten in place (a newly pretrained
domain model under the same name) left every cached step computed with the old one
reused, and the old model exported. The never-cached first step hashes what the source
and these files hold now (their listing: size, version, checksum; nothing is read), and
the split takes that hash, so a change of any of them recomputes the run.
"""

import hashlib

from kftransfer.components.core import listing, storage
from kftransfer.components.core.registry import HUB_PREFIX, is_custom, is_hub, names_local_folder
from kftransfer.components.core.sources import fingerprint

NAMED_WEIGHTS = ("", "imagenet", "none")  # what `--weights` takes besides a file


def inputs_fingerprint(source: str, backbones: str = "", weights: str = "") -> str:
    """The hex sha256 of the source's listing and of the backbone and weights files' versions.

    Args:
        source: the dataset (folder, pre-split tree or CSV; local or gs://).
        backbones: the backbone, or several comma-separated (`--backbones`).
        weights: `--weights`: `imagenet`, `none` or a weights file.
    """
    digest = hashlib.sha256(fingerprint(source).encode())
    for uri in model_files([b for b in backbones.split(",") if b], weights):
        digest.update(f"\n{uri}\t{_version(uri)}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def model_files(backbones: list[str], weights: str) -> list[str]:
    """The files and folders among the backbones and weights (not names such as `imagenet`)."""
    files = [] if weights in NAMED_WEIGHTS else [weights]
    for backbone in backbones:
        preset = backbone.removeprefix(HUB_PREFIX)
        if is_custom(backbone):
            files.append(backbone)
        elif is_hub(backbone) and (storage.is_gcs(preset) or names_local_folder(preset)):
            files.append(preset)  # a preset folder of ours; named presets are versioned
    return files


def _version(uri: str) -> str:
    """A file's size, version and checksum; a folder's listing hash; `missing` if neither."""
    info = listing.file_info(uri)
    if info is not None:
        return f"{info.size}\t{info.version}\t{info.checksum}"
    return fingerprint(uri) if storage.is_folder(uri) else "missing"
