"""One small storage API for local paths and `gs://` URIs.

Every byte kftransfer reads or writes outside a KFP artifact goes through here, so
local folders, Google Cloud Storage and the GCS emulator (`STORAGE_EMULATOR_HOST`)
behave alike. Writes are atomic: a reader sees the old object or the new one, never
a half-written one (local: temp file + rename; GCS: an upload is only visible once
complete). `tf.io.gfile` is not used because it ignores the emulator.
"""

import contextlib
import functools
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from kftransfer.components.core.errors import UserError
from kftransfer.components.core.parallel import map_ordered

GCS_SCHEME = "gs://"
READ_THREADS = 16


class StorageError(UserError):
    """A storage operation failed; the message names the URI."""


class NotFoundError(StorageError):
    """The object, file or bucket does not exist."""


@dataclass(frozen=True)
class FileInfo:
    """One listed file: its full URI and size in bytes."""

    uri: str
    size: int


def is_gcs(uri: str) -> bool:
    """Whether `uri` names a Google Cloud Storage object (`gs://bucket/name`)."""
    return uri.startswith(GCS_SCHEME)


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


def split_gcs(uri: str) -> tuple[str, str]:
    """Splits `gs://bucket/name` into `(bucket, name)`."""
    bucket, _, name = uri[len(GCS_SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: not a gs://bucket/path URI")
    return bucket, name


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
    """`uri`'s path below `base`, with `/` separators."""
    if is_gcs(uri):
        return posixpath.relpath(uri[len(GCS_SCHEME) :], base.rstrip("/")[len(GCS_SCHEME) :])
    return os.path.relpath(_local(uri), _local(base)).replace(os.sep, "/")


# --------------------------------------------------------------------------- GCS client


def gcs_client():
    """The shared `google.cloud.storage.Client`, anonymous when an emulator is configured."""
    return _gcs_client(os.environ.get("STORAGE_EMULATOR_HOST"))


@functools.cache
def _gcs_client(emulator_host: str | None):
    import google.auth.exceptions
    import requests.adapters
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    try:
        if emulator_host:
            client = storage.Client(project="emulator", credentials=AnonymousCredentials())
        else:
            client = storage.Client()
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise StorageError(
            "no Google Cloud credentials: run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or use Workload Identity"
        ) from err
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=2 * READ_THREADS)
    for scheme in ("http://", "https://"):
        client._http.mount(scheme, adapter)
    return client


def _blob(uri: str):
    bucket, name = split_gcs(uri)
    if not name:
        raise StorageError(f"{uri}: names a bucket, not an object")
    return gcs_client().bucket(bucket).blob(name)


@contextlib.contextmanager
def _translated_errors(uri: str) -> Iterator[None]:
    """Turns GCS and OS errors into one-line StorageErrors naming `uri`."""
    from google.api_core import exceptions as gexc

    try:
        yield
    except (FileNotFoundError, gexc.NotFound) as err:
        raise NotFoundError(f"{uri}: not found") from err
    except (PermissionError, gexc.Forbidden, gexc.Unauthorized) as err:
        hint = " (check the credentials' IAM roles on the bucket)" if is_gcs(uri) else ""
        raise StorageError(f"{uri}: permission denied{hint}") from err
    except gexc.GoogleAPIError as err:
        raise StorageError(f"{uri}: {type(err).__name__}: {_first_line(err)}") from err
    except OSError as err:
        raise StorageError(f"{uri}: {err.strerror or err}") from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _retry():
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


# --------------------------------------------------------------------------- reading


def list_files(uri: str) -> list[FileInfo]:
    """Lists every file below folder `uri`, recursively, sorted by URI.

    Raises:
        NotFoundError: the folder (or bucket) does not exist.
    """
    with _translated_errors(uri):
        if is_gcs(uri):
            return _list_gcs(uri)
        root = _local(uri)
        if not os.path.isdir(root):
            raise FileNotFoundError(root)
        found = []
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                found.append(FileInfo(path, os.path.getsize(path)))
        return sorted(found, key=lambda info: info.uri)


def _list_gcs(uri: str) -> list[FileInfo]:
    bucket, prefix = split_gcs(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    blobs = gcs_client().list_blobs(bucket, prefix=prefix, retry=_retry())
    found = [
        FileInfo(f"{GCS_SCHEME}{bucket}/{blob.name}", blob.size or 0)
        for blob in blobs
        if not blob.name.endswith("/")
    ]
    return sorted(found, key=lambda info: info.uri)


def exists(uri: str) -> bool:
    """Whether the file or object `uri` exists."""
    with _translated_errors(uri):
        if is_gcs(uri):
            return _blob(uri).exists(retry=_retry())
        return os.path.isfile(_local(uri))


def is_folder(uri: str) -> bool:
    """Whether `uri` is a local folder, or a `gs://` prefix holding at least one object."""
    with _translated_errors(uri):
        if not is_gcs(uri):
            return os.path.isdir(_local(uri))
        bucket, prefix = split_gcs(uri)
        prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        blobs = gcs_client().list_blobs(bucket, prefix=prefix, max_results=1, retry=_retry())
        return any(True for _ in blobs)


def read_bytes(uri: str) -> bytes:
    """The whole content of file or object `uri`."""
    with _translated_errors(uri):
        if is_gcs(uri):
            return _blob(uri).download_as_bytes(retry=_retry())
        with open(_local(uri), "rb") as file:
            return file.read()


def read_text(uri: str) -> str:
    """The content of `uri` decoded as UTF-8."""
    return read_bytes(uri).decode("utf-8")


@contextlib.contextmanager
def open_read(uri: str) -> Iterator[BinaryIO]:
    """Opens `uri` for streaming binary reads (GCS: chunked ranged downloads)."""
    with _translated_errors(uri):
        if is_gcs(uri):
            with _blob(uri).open("rb", retry=_retry()) as stream:
                yield stream
        else:
            with open(_local(uri), "rb") as stream:
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
    with _translated_errors(uri):
        if is_gcs(uri):
            with tempfile.TemporaryFile() as tmp:
                yield tmp
                tmp.seek(0)
                _blob(uri).upload_from_file(tmp, rewind=True, retry=_retry())
            return
        path = _local(uri)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as tmp:
                yield tmp
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
        with _translated_errors(src):
            source = _blob(src)
            dst_bucket, dst_name = split_gcs(dst)
            source.bucket.copy_blob(
                source, gcs_client().bucket(dst_bucket), dst_name, retry=_retry()
            )
        return
    with open_read(src) as stream, open_write(dst) as out:
        shutil.copyfileobj(stream, out, length=1 << 20)


def remove(uri: str) -> None:
    """Deletes file or object `uri` if it exists."""
    with contextlib.suppress(NotFoundError), _translated_errors(uri):
        if is_gcs(uri):
            _blob(uri).delete(retry=_retry())
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
