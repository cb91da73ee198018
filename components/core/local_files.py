"""Local files for the storage layer: listing through linked folders, and reading files only.

`storage` is the API; this module holds what only a local file system has (as `gcs`
holds what only Google Cloud Storage has): symbolic links to folders, cycles, and files
that are no files — named pipes, devices, sockets.
"""

import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from kftransfer.components.core.errors import StorageError

SPECIAL_FILES = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a named pipe (FIFO)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


def path_of(uri: str) -> str:
    """The local path a local URI names (a `file://` prefix dropped)."""
    return uri.removeprefix("file://")


def walk(root: str) -> Iterator[str]:
    """Every file below folder `root`, following symbolic links to folders.

    A class folder is often a link (`ln -s /data/raw/cats cats`), which `os.walk` alone
    does not enter. A link to a folder the walk is already inside (a cycle) is not
    followed: what it holds is listed once, through the real path.

    Raises:
        StorageError: a folder cannot be listed (no permission): `os.walk` alone leaves
            it out without a word, and a class would lose its images, or drop out.
    """
    inside = {root: {os.path.realpath(root)}}
    for folder, folders, names in os.walk(root, onerror=_unlistable, followlinks=True):
        chain, kept = inside.pop(folder), []
        for name in folders:
            real = os.path.realpath(os.path.join(folder, name))
            if real not in chain:
                kept.append(name)
                inside[os.path.join(folder, name)] = chain | {real}
        folders[:] = kept
        yield from (os.path.join(folder, name) for name in names)


def _unlistable(error: OSError) -> None:
    raise StorageError(
        f"cannot list folder {error.filename}: {error.strerror}; give the user running "
        "kftransfer read access to it, or move it out"
    ) from error


def open_file(path: str, uri: str) -> BinaryIO:
    """Opens file `path` (`uri` as the caller names it) for reading, if it is a regular file.

    A named pipe would block its reader for ever, and a device such as `/dev/zero` would
    never end: in a folder of images, either hung a split that no signal stopped.

    Raises:
        StorageError: `path` is a folder, named pipe, device or socket.
        OSError: it cannot be opened.
    """
    _require_regular(uri, os.stat(path).st_mode)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # does not wait for a writer
    try:
        _require_regular(uri, os.fstat(descriptor).st_mode)  # what was opened, if it changed
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def is_special(path: str) -> bool:
    """Whether `path` is a folder, named pipe, device or socket; False if it does not exist."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return _special_kind(mode) is not None


def _require_regular(uri: str, mode: int) -> None:
    kind = _special_kind(mode)
    if kind:
        raise StorageError(f"{uri}: not a regular file but {kind}: only files are read")


def _special_kind(mode: int) -> str | None:
    """What a file of `mode` is when it is no regular file ('a named pipe (FIFO)'), or None."""
    return next((name for test, name in SPECIAL_FILES.items() if test(mode)), None)
