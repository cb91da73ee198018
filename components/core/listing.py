"""Listing files and folders of local paths and `gs://` URIs.

A listing says, of each file, what changes whenever it is rewritten (`FileInfo.version`),
so callers can tell a file they know from a replaced one without reading it.
"""

import os
from dataclasses import dataclass

from kftransfer.components.core import gcs, local_files
from kftransfer.components.core.errors import NotFoundError
from kftransfer.components.core.gcs import is_gcs


@dataclass(frozen=True)
class FileInfo:
    """One listed file.

    Attributes:
        uri: its full URI.
        size: its size in bytes.
        version: changes whenever it is rewritten: the object generation on GCS; locally
            the modification time, change time (ns) and inode. The modification time
            alone misses a file replaced with another of the same size and an old
            time, as `tar`, `unzip` and `rsync -a` restore it; the change time, which
            only the system sets, moves then, and the inode when a file is replaced.
        modified: when it was last written, in seconds since the epoch.
        checksum: the content's checksum the listing gives (GCS: `md5:<base64>`, or
            `crc32c:<base64>` for composite objects); "" locally.
    """

    uri: str
    size: int
    version: str = ""
    modified: float = 0.0
    checksum: str = ""


def list_files(uri: str) -> list[FileInfo]:
    """Lists every file below folder `uri`, recursively, sorted by URI.

    Raises:
        NotFoundError: the folder (or bucket) does not exist.
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            found = [FileInfo(*entry) for entry in gcs.list_objects(uri)]
            return sorted(found, key=lambda info: info.uri)
        root = local_files.path_of(uri)
        if not os.path.isdir(root):
            raise FileNotFoundError(root)
        found = []
        for path in local_files.walk(root):
            try:
                stat = os.stat(path)
            except OSError:  # a dangling symbolic link: listed, and unreadable later
                stat = os.lstat(path)
            found.append(_local_info(path, stat))
        return sorted(found, key=lambda info: info.uri)


def list_files_if_any(uri: str) -> list[FileInfo]:
    """`list_files`, or [] when the folder (or bucket) does not exist (yet)."""
    try:
        return list_files(uri)
    except NotFoundError:
        return []


def file_info(uri: str) -> FileInfo | None:
    """What a listing says of the file `uri` (size, version, checksum); None if it is none."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            entry = gcs.object_info(uri)
            return FileInfo(*entry) if entry else None
        path = local_files.path_of(uri)
        return _local_info(path, os.stat(path)) if os.path.isfile(path) else None


def folder_infos(uri: str, max_pages: int) -> dict[str, FileInfo]:
    """The files directly in the `gs://` folder `uri`, by URI: all of them, or some.

    At most `max_pages` requests of its listing are made (1,000 files each).

    Raises:
        ValueError: `uri` is a local path (a local file's `file_info` costs no request).
    """
    if not is_gcs(uri):
        raise ValueError(f"{uri}: folder_infos lists gs:// folders only")
    with gcs.translated_errors(uri):
        return {entry[0]: FileInfo(*entry) for entry in gcs.list_folder_objects(uri, max_pages)}


def _local_info(path: str, stat: os.stat_result) -> FileInfo:
    version = f"{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
    return FileInfo(path, stat.st_size, version, stat.st_mtime)


def list_folders(uri: str) -> list[str]:
    """The names of the folders directly in folder `uri`, sorted (a GCS prefix is one).

    On GCS an empty folder exists only as a placeholder object (`photos/horses/`, what the
    console's "Create folder" writes); it is listed too.
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.list_prefixes(uri)
        with os.scandir(local_files.path_of(uri)) as entries:
            return sorted(e.name for e in entries if e.is_dir())  # links to folders too
