"""Compare-and-swap writes: replace a file only if nobody else has since it was read.

GCS: the object generation, checked by the server. Local: a number that changes whenever
the file is replaced, checked under an exclusive lock.
"""

import os

from kftransfer.components.core import gcs, local_files, storage
from kftransfer.components.core.errors import PreconditionFailed
from kftransfer.components.core.gcs import is_gcs


def read_versioned(uri: str) -> tuple[bytes | None, int]:
    """The content of `uri` and its generation (None and 0 when it does not exist).

    GCS: the object generation. Local: a number that changes whenever the file is
    replaced (its inode and modification time).
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.read_versioned(uri)
        try:
            with open(local_files.path_of(uri), "rb") as file:
                return file.read(), _local_generation(os.fstat(file.fileno()))
        except FileNotFoundError:
            return None, 0


def _local_generation(stat: os.stat_result) -> int:
    return stat.st_ino * 10**20 + stat.st_mtime_ns


def write_if_generation(uri: str, data: bytes, generation: int) -> None:
    """Writes `uri` only if its generation is still `generation` (0: only if absent).

    GCS: an upload with `ifGenerationMatch`, decided by the server. Local: a check and
    an atomic rename under an exclusive lock on a hidden file beside it.

    Raises:
        PreconditionFailed: `uri` changed since `generation` was read.
    """
    if is_gcs(uri):
        with gcs.translated_errors(uri):
            gcs.write_if_generation(uri, data, generation)
        return
    import fcntl

    path = local_files.path_of(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lock_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")
    with open(lock_path, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _local_generation(os.stat(path)) if os.path.exists(path) else 0
        if current != generation:
            raise PreconditionFailed(f"{uri}: changed by another writer")
        storage.write_bytes(uri, data)
