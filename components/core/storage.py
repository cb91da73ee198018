"""One small storage API for local paths and `gs://` URIs.

Every byte kftransfer reads or writes outside a KFP artifact goes through here, so
local folders, Google Cloud Storage and the GCS emulator (`STORAGE_EMULATOR_HOST`)
behave alike. Writes are atomic: a reader sees the old object or the new one, never
a half-written one (local: temp file + rename; GCS: an upload is only visible once
complete). `tf.io.gfile` is not used because it ignores the emulator.
"""

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from kftransfer.components.core import gcs, local_files
from kftransfer.components.core.errors import NotFoundError, PreconditionFailed, StorageError
from kftransfer.components.core.gcs import is_gcs, split_gcs
from kftransfer.components.core.parallel import map_ordered

__all__ = ["NotFoundError", "PreconditionFailed", "StorageError", "is_gcs", "split_gcs"]

READ_THREADS = 16  # concurrent reads of many small files
FILE_MODE = 0o644  # written files are readable by other users (e.g. a serving container)
FOLDER_MODE = 0o755  # and the folders of a published version can be entered by them


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


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


def join(base: str, *parts: str) -> str:
    """Joins path parts onto a local path or a `gs://` URI."""
    if is_gcs(base):
        return posixpath.join(base, *parts)
    return os.path.join(_local(base), *parts)


def parent(uri: str) -> str:
    """The folder holding `uri`."""
    return posixpath.dirname(uri.rstrip("/")) if is_gcs(uri) else os.path.dirname(_local(uri))


def basename(uri: str) -> str:
    """The last path component of `uri`."""
    return posixpath.basename(uri.rstrip("/"))


def relative_to(uri: str, base: str) -> str:
    """`uri`'s path below `base`, with `/` separators.

    A plain prefix cut when `uri` lies below `base` as written (every listed file does:
    a split lists millions, and `relpath` is most of a cached re-split's time).
    """
    prefix = base.rstrip("/") + "/"
    if uri.startswith(prefix) and "/../" not in uri and "/./" not in uri:
        return uri[len(prefix) :]
    if is_gcs(uri):
        return posixpath.relpath(uri[len(gcs.SCHEME) :], base.rstrip("/")[len(gcs.SCHEME) :])
    return os.path.relpath(_local(uri), _local(base)).replace(os.sep, "/")


# --------------------------------------------------------------------------- reading


def list_files(uri: str) -> list[FileInfo]:
    """Lists every file below folder `uri`, recursively, sorted by URI.

    Raises:
        NotFoundError: the folder (or bucket) does not exist.
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            found = [FileInfo(*entry) for entry in gcs.list_objects(uri)]
            return sorted(found, key=lambda info: info.uri)
        root = _local(uri)
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
        path = _local(uri)
        return _local_info(path, os.stat(path)) if os.path.isfile(path) else None


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
        with os.scandir(_local(uri)) as entries:
            return sorted(e.name for e in entries if e.is_dir())  # links to folders too


def exists(uri: str) -> bool:
    """Whether the file or object `uri` exists."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.blob(uri).exists(retry=gcs.retry())
        return os.path.isfile(_local(uri))


def is_folder(uri: str) -> bool:
    """Whether `uri` is a local folder, or a `gs://` prefix holding at least one object."""
    with gcs.translated_errors(uri):
        if not is_gcs(uri):
            return os.path.isdir(_local(uri))
        bucket, prefix = split_gcs(uri)
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        blobs = gcs.client().list_blobs(bucket, prefix=prefix, max_results=1, retry=gcs.retry())
        return any(True for _ in blobs)


def read_bytes(uri: str) -> bytes:
    """The whole content of file or object `uri`."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.blob(uri).download_as_bytes(retry=gcs.retry())
        with local_files.open_file(_local(uri), uri) as file:
            return file.read()


def read_head(uri: str, size: int) -> bytes:
    """The first `size` bytes of file or object `uri` (all of it when it is shorter)."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.read_head(uri, size)
        with local_files.open_file(_local(uri), uri) as file:
            return file.read(size)


def is_special_file(uri: str) -> bool:
    """Whether local `uri` is a folder, named pipe, device or socket: nothing `read_bytes` reads.

    For readers that do not go through this module (TensorFlow's `tf.io.read_file`). False
    for `gs://` objects, regular files and paths that do not exist (reading them says why).
    """
    return not is_gcs(uri) and local_files.is_special(_local(uri))


def read_text(uri: str) -> str:
    """The content of `uri` decoded as UTF-8, without the byte-order mark Excel starts with."""
    return read_bytes(uri).decode("utf-8-sig")


@contextlib.contextmanager
def open_read(uri: str) -> Iterator[BinaryIO]:
    """Opens `uri` for streaming binary reads (GCS: chunked ranged downloads)."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            with gcs.blob(uri).open("rb", retry=gcs.retry()) as stream:
                yield stream
        else:
            with local_files.open_file(_local(uri), uri) as stream:
                yield stream


def read_many(
    uris: Iterable[str], threads: int = READ_THREADS
) -> Iterator[tuple[str, bytes | StorageError]]:
    """Reads many small files on a thread pool, yielding `(uri, bytes or error)` in order.

    Memory stays bounded however many URIs there are (see `parallel.map_ordered`). A
    failed read yields its StorageError instead of raising, so one bad file never stops
    a batch.
    """

    def read(uri: str) -> tuple[str, bytes | StorageError]:
        try:
            return uri, read_bytes(uri)
        except StorageError as err:
            return uri, err

    return map_ordered(read, uris, threads=threads)


@contextlib.contextmanager
def local_path(uri: str) -> Iterator[str]:
    """Yields a local path holding `uri`'s content: the file itself, or a temp copy of gs://.

    The temp copy keeps the URI's file name (Keras picks the format by extension) and is
    deleted afterwards.

    Raises:
        NotFoundError: `uri` does not exist.
    """
    if not is_gcs(uri):
        if not os.path.isfile(_local(uri)):
            raise NotFoundError(f"{uri}: not found")
        yield _local(uri)
        return
    with tempfile.TemporaryDirectory(prefix="kftransfer-") as tmp:
        path = os.path.join(tmp, basename(uri))
        download_file(uri, path)
        yield path


@contextlib.contextmanager
def local_folder(uri: str) -> Iterator[str]:
    """Yields a local folder holding folder `uri`: the folder itself, or a temp copy of gs://.

    Raises:
        NotFoundError: `uri` is not a folder (or holds no objects).
    """
    if not is_gcs(uri):
        if not os.path.isdir(_local(uri)):
            raise NotFoundError(f"{uri}: no such folder")
        yield _local(uri)
        return
    with tempfile.TemporaryDirectory(prefix="kftransfer-") as tmp:
        if not copy_folder(uri, tmp):
            raise NotFoundError(f"{uri}: no such folder")
        yield tmp


def download_file(uri: str, local_path: str) -> None:
    """Copies file or object `uri` to `local_path` (atomically)."""
    with open_write(local_path) as out, open_read(uri) as src:
        shutil.copyfileobj(src, out, length=1 << 20)


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def open_write(uri: str) -> Iterator[BinaryIO]:
    """Opens `uri` for writing; the file appears, whole, only if the block succeeds.

    Local: a temp file beside the target, renamed over it on success. GCS: a local temp
    file uploaded on success (an object becomes visible only once its upload completes).
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            with tempfile.TemporaryFile() as tmp:
                yield tmp
                tmp.seek(0)
                gcs.blob(uri).upload_from_file(tmp, rewind=True, retry=gcs.retry())
            return
        path = _local(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                yield tmp
            os.chmod(tmp_path, FILE_MODE)
            os.replace(tmp_path, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_path)
            raise


def write_bytes(uri: str, data: bytes) -> None:
    """Writes `data` to `uri` atomically."""
    with open_write(uri) as out:
        out.write(data)


def write_text(uri: str, text: str) -> None:
    """Writes `text` as UTF-8 to `uri` atomically."""
    write_bytes(uri, text.encode("utf-8"))


def write_json(uri: str, value: object) -> None:
    """Writes `value` as indented JSON to `uri` atomically."""
    write_text(uri, json.dumps(value, indent=1))


def read_json(uri: str) -> object:
    """The JSON value stored at `uri`."""
    return json.loads(read_text(uri))


def upload_file(local_path: str, uri: str) -> None:
    """Copies local file `local_path` to `uri` (atomically)."""
    with open(local_path, "rb") as src, open_write(uri) as out:
        shutil.copyfileobj(src, out, length=1 << 20)


def copy(src: str, dst: str) -> None:
    """Copies a file between any two URIs (server-side within GCS)."""
    if is_gcs(src) and is_gcs(dst):
        with gcs.translated_errors(src):
            source = gcs.blob(src)
            dst_bucket, dst_name = split_gcs(dst)
            source.bucket.copy_blob(
                source, gcs.client().bucket(dst_bucket), dst_name, retry=gcs.retry()
            )
        return
    with open_read(src) as stream, open_write(dst) as out:
        shutil.copyfileobj(stream, out, length=1 << 20)


def copy_folder(src: str, dst: str) -> int:
    """Copies every file below folder `src` to the same path below `dst` (any two URIs).

    Returns:
        How many files were copied (0 for an empty or missing gs:// prefix).

    Raises:
        NotFoundError: `src` is a local path that is not a folder.
    """
    files = list_files(src)
    for info in files:
        copy(info.uri, join(dst, relative_to(info.uri, src)))
    return len(files)


def remove(uri: str) -> None:
    """Deletes file or object `uri` if it exists."""
    with contextlib.suppress(NotFoundError), gcs.translated_errors(uri):
        if is_gcs(uri):
            gcs.blob(uri).delete(retry=gcs.retry())
        else:
            os.remove(_local(uri))


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
            write_bytes(join(uri, name), files[name])
        for info in list_files(uri):
            if relative_to(info.uri, uri) not in files:
                remove(info.uri)
        return
    path = os.path.abspath(_local(uri))
    require_folder_path(uri)
    if os.path.exists(path) and os.listdir(path) and not os.path.isfile(join(path, marker)):
        raise StorageError(f"{uri} exists and is not an earlier output; choose a new folder")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.tmp-")
    try:
        for name, data in files.items():
            os.makedirs(os.path.dirname(join(tmp, name)), exist_ok=True)
            with open(join(tmp, name), "wb") as out:
                out.write(data)
        if os.path.exists(path):
            old = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".old-")
            os.replace(path, join(old, "folder"))
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
    path = os.path.abspath(_local(uri))
    if os.path.exists(path) and not os.path.isdir(path):
        raise StorageError(f"{uri} is a file: give a folder to write to")
    ancestor = os.path.dirname(path)
    while ancestor and not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if ancestor and not os.path.isdir(ancestor):
        raise StorageError(f"{uri} lies below the file {ancestor}: give a folder path")
    if ancestor and not os.access(ancestor, os.W_OK):
        raise StorageError(f"{uri}: {ancestor} is read-only here: give a folder you may write to")


# --------------------------------------------------------------------------- compare-and-swap


def read_versioned(uri: str) -> tuple[bytes | None, int]:
    """The content of `uri` and its generation (None and 0 when it does not exist).

    GCS: the object generation. Local: a number that changes whenever the file is
    replaced (its inode and modification time).
    """
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.read_versioned(uri)
        try:
            with open(_local(uri), "rb") as file:
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

    path = _local(uri)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    lock_path = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = _local_generation(os.stat(path)) if os.path.exists(path) else 0
        if current != generation:
            raise PreconditionFailed(f"{uri}: changed by another writer")
        write_bytes(uri, data)
