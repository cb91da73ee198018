"""One small storage API for local paths and `gs://` URIs.

Every byte kftransfer reads or writes outside a KFP artifact goes through here, so
local folders, Google Cloud Storage and the GCS emulator (`STORAGE_EMULATOR_HOST`)
behave alike. Writes are atomic: a reader sees the old object or the new one, never
a half-written one (local: temp file + rename; GCS: an upload is only visible once
complete). `tf.io.gfile` is not used because it ignores the emulator.

Beside it: `listing` (files and folders, with their versions), `folders` (whole folders
copied, replaced or read locally) and `generations` (compare-and-swap writes).
"""

import contextlib
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from kftransfer.components.core import gcs, local_files
from kftransfer.components.core.errors import NotFoundError, StorageError
from kftransfer.components.core.gcs import is_gcs, split_gcs
from kftransfer.components.core.parallel import map_ordered

__all__ = ["NotFoundError", "StorageError", "is_gcs", "split_gcs"]

READ_THREADS = 16  # concurrent reads of many small files
FILE_MODE = 0o644  # written files are readable by other users (e.g. a serving container)
FOLDER_MODE = 0o755  # and the folders of a published version can be entered by them


def join(base: str, *parts: str) -> str:
    """Joins path parts onto a local path or a `gs://` URI."""
    if is_gcs(base):
        return posixpath.join(base, *parts)
    return os.path.join(local_files.path_of(base), *parts)


def parent(uri: str) -> str:
    """The folder holding `uri`."""
    return (
        posixpath.dirname(uri.rstrip("/"))
        if is_gcs(uri)
        else os.path.dirname(local_files.path_of(uri))
    )


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
    return os.path.relpath(local_files.path_of(uri), local_files.path_of(base)).replace(os.sep, "/")


# --------------------------------------------------------------------------- reading


def exists(uri: str) -> bool:
    """Whether the file or object `uri` exists."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.blob(uri).exists(retry=gcs.retry())
        return os.path.isfile(local_files.path_of(uri))


def is_folder(uri: str) -> bool:
    """Whether `uri` is a local folder, or a `gs://` prefix holding at least one object."""
    with gcs.translated_errors(uri):
        if not is_gcs(uri):
            return os.path.isdir(local_files.path_of(uri))
        bucket, prefix = split_gcs(uri)
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        blobs = gcs.client().list_blobs(bucket, prefix=prefix, max_results=1, retry=gcs.retry())
        return any(True for _ in blobs)


def read_bytes(uri: str) -> bytes:
    """The whole content of file or object `uri`."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.blob(uri).download_as_bytes(retry=gcs.retry())
        with local_files.open_file(local_files.path_of(uri), uri) as file:
            return file.read()


def read_head(uri: str, size: int) -> bytes:
    """The first `size` bytes of file or object `uri` (all of it when it is shorter)."""
    with gcs.translated_errors(uri):
        if is_gcs(uri):
            return gcs.read_head(uri, size)
        with local_files.open_file(local_files.path_of(uri), uri) as file:
            return file.read(size)


def is_special_file(uri: str) -> bool:
    """Whether local `uri` is a folder, named pipe, device or socket: nothing `read_bytes` reads.

    For readers that do not go through this module (TensorFlow's `tf.io.read_file`). False
    for `gs://` objects, regular files and paths that do not exist (reading them says why).
    """
    return not is_gcs(uri) and local_files.is_special(local_files.path_of(uri))


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
            with local_files.open_file(local_files.path_of(uri), uri) as stream:
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
        if not os.path.isfile(local_files.path_of(uri)):
            raise NotFoundError(f"{uri}: not found")
        yield local_files.path_of(uri)
        return
    with tempfile.TemporaryDirectory(prefix="kftransfer-") as tmp:
        path = os.path.join(tmp, basename(uri))
        download_file(uri, path)
        yield path


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
        path = local_files.path_of(uri)
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


def remove(uri: str) -> None:
    """Deletes file or object `uri` if it exists."""
    with contextlib.suppress(NotFoundError), gcs.translated_errors(uri):
        if is_gcs(uri):
            gcs.blob(uri).delete(retry=gcs.retry())
        else:
            os.remove(local_files.path_of(uri))
