"""Whole folders in local paths and `gs://` URIs: copied, replaced, or read locally."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from kftransfer.components.core import local_files, storage
from kftransfer.components.core.errors import NotFoundError, StorageError
from kftransfer.components.core.gcs import is_gcs
from kftransfer.components.core.listing import list_files


@contextlib.contextmanager
def local_folder(uri: str) -> Iterator[str]:
    """Yields a local folder holding folder `uri`: the folder itself, or a temp copy of gs://.

    Raises:
        NotFoundError: `uri` is not a folder (or holds no objects).
    """
    if not is_gcs(uri):
        if not os.path.isdir(local_files.path_of(uri)):
            raise NotFoundError(f"{uri}: no such folder")
        yield local_files.path_of(uri)
        return
    with tempfile.TemporaryDirectory(prefix="kftransfer-") as tmp:
        if not copy_folder(uri, tmp):
            raise NotFoundError(f"{uri}: no such folder")
        yield tmp


def copy_folder(src: str, dst: str) -> int:
    """Copies every file below folder `src` to the same path below `dst` (any two URIs).

    Returns:
        How many files were copied (0 for an empty or missing gs:// prefix).

    Raises:
        NotFoundError: `src` is a local path that is not a folder.
    """
    files = list_files(src)
    for info in files:
        storage.copy(info.uri, storage.join(dst, storage.relative_to(info.uri, src)))
    return len(files)


def replace_folder(uri: str, files: dict[str, bytes], marker: str) -> None:
    """Writes `files` (name -> bytes) as folder `uri`, replacing an earlier such folder.

    Local: built in a temp folder, then swapped in by rename, so the folder is never
    half-written. GCS has no folders: every file but `marker` is uploaded first, `marker`
    last (a folder with its marker is complete), then objects of an earlier version that
    the new one lacks are deleted. An existing folder is only
    replaced if it is empty or holds `marker` (an earlier output), never a user's folder.

    Raises:
        StorageError: `uri` exists and is not an earlier output.
    """
    if is_gcs(uri):
        for name in sorted(files, key=lambda n: n == marker):
            storage.write_bytes(storage.join(uri, name), files[name])
        for info in list_files(uri):
            if storage.relative_to(info.uri, uri) not in files:
                storage.remove(info.uri)
        return
    path = os.path.abspath(local_files.path_of(uri))
    require_folder_path(uri)
    if os.path.exists(path) and os.listdir(path) and not os.path.isfile(storage.join(path, marker)):
        raise StorageError(f"{uri} exists and is not an earlier output; choose a new folder")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.tmp-")
    try:
        for name, data in files.items():
            os.makedirs(os.path.dirname(storage.join(tmp, name)), exist_ok=True)
            with open(storage.join(tmp, name), "wb") as out:
                out.write(data)
        if os.path.exists(path):
            old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".old-")
            os.replace(path, storage.join(old, "folder"))
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def require_folder_path(uri: str) -> None:
    """Refuses a local folder path that is no folder, lies below a file, or cannot be written.

    A gs:// prefix is always fine: no file can be in the way of one.

    Raises:
        StorageError: naming the file in the way.
    """
    if is_gcs(uri):
        return
    path = os.path.abspath(local_files.path_of(uri))
    if os.path.exists(path) and not os.path.isdir(path):
        raise StorageError(f"{uri} is a file: give a folder to write to")
    ancestor = os.path.dirname(path)
    while ancestor and not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if ancestor and not os.path.isdir(ancestor):
        raise StorageError(f"{uri} lies below the file {ancestor}: give a folder path")
    if ancestor and not os.access(ancestor, os.W_OK):
        raise StorageError(f"{uri}: {ancestor} is read-only here: give a folder you may write to")
