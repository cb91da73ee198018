"""Google Cloud Storage for the storage layer: the client, error translation, generations.

The client uses Application Default Credentials (a service account, Workload Identity on
GKE, or `gcloud auth application-default login`), or anonymous access to an emulator
when `STORAGE_EMULATOR_HOST` is set. Reads, listings and conditional writes use the
client's retry policy for transient errors.
"""

import contextlib
import functools
import os
from collections.abc import Iterator

from kftransfer.components.core.errors import NotFoundError, PreconditionFailed, StorageError

SCHEME = "gs://"
CONNECTIONS = 32  # HTTP connections per client: the storage layer reads on 16 threads


def is_gcs(uri: str) -> bool:
    """Whether `uri` names a Google Cloud Storage object (`gs://bucket/name`)."""
    return uri.startswith(SCHEME)


def split_gcs(uri: str) -> tuple[str, str]:
    """Splits `gs://bucket/name` into `(bucket, name)`."""
    bucket, _, name = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: not a gs://bucket/path URI")
    return bucket, name


def client():
    """The shared `google.cloud.storage.Client`, anonymous when an emulator is configured."""
    return _client(os.environ.get("STORAGE_EMULATOR_HOST"))


@functools.cache
def _client(emulator_host: str | None):
    import google.auth.exceptions
    import requests.adapters
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    try:
        if emulator_host:
            gcs = storage.Client(project="emulator", credentials=AnonymousCredentials())
        else:
            gcs = storage.Client()
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise StorageError(
            "no Google Cloud credentials: run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or use Workload Identity"
        ) from err
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONNECTIONS)
    for scheme in ("http://", "https://"):
        gcs._http.mount(scheme, adapter)
    return gcs


def blob(uri: str):
    """The `Blob` of `gs://bucket/name`."""
    bucket, name = split_gcs(uri)
    if not name:
        raise StorageError(f"{uri}: names a bucket, not an object")
    return client().bucket(bucket).blob(name)


def retry():
    """The client's default retry policy: transient errors retried with backoff.

    For at most `KFTRANSFER_GCS_RETRY_SECONDS` (default 120) per call.
    """
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(float(os.environ.get("KFTRANSFER_GCS_RETRY_SECONDS", "120")))


@contextlib.contextmanager
def translated_errors(uri: str) -> Iterator[None]:
    """Turns GCS and OS errors into one-line StorageErrors naming `uri`."""
    import requests
    from google.api_core import exceptions as gexc

    try:
        yield
    except gexc.RetryError as err:
        cause = type(err.cause).__name__ if err.cause else "timeout"
        raise StorageError(f"{uri}: storage unreachable ({cause}), gave up after retrying") from err
    except requests.exceptions.ConnectionError as err:
        raise StorageError(f"{uri}: storage unreachable ({type(err).__name__})") from err
    except (FileNotFoundError, gexc.NotFound) as err:
        raise NotFoundError(f"{uri}: not found") from err
    except (PermissionError, gexc.Forbidden, gexc.Unauthorized) as err:
        hint = " (check the credentials' IAM roles on the bucket)" if is_gcs(uri) else ""
        raise StorageError(f"{uri}: permission denied{hint}") from err
    except gexc.GoogleAPIError as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise StorageError(f"{uri}: {type(err).__name__}: {first_line}") from err
    except OSError as err:
        raise StorageError(f"{uri}: {err.strerror or err}") from err


def list_objects(uri: str) -> list[tuple[str, int, str, float, str]]:
    """`(uri, size, generation, updated, checksum)` of every object below the prefix `uri`."""
    bucket, prefix = split_gcs(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    blobs = client().list_blobs(bucket, prefix=prefix, retry=retry())
    return [_listed(bucket, b) for b in blobs if not b.name.endswith("/")]


def list_folder_objects(uri: str, max_pages: int) -> list[tuple[str, int, str, float, str]]:
    """`list_objects`' entries of the objects directly in the prefix `uri`, at most pages.

    At most `max_pages` pages of the listing are read (1,000 objects a page), so the
    entries are all of them or the first.
    """
    bucket, prefix = split_gcs(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    pages = client().list_blobs(bucket, prefix=prefix, delimiter="/", retry=retry()).pages
    found = []
    for _, page in zip(range(max_pages), pages, strict=False):
        found += [_listed(bucket, b) for b in page if not b.name.endswith("/")]
    return found


def list_prefixes(uri: str) -> list[str]:
    """The names of the "folders" directly below the prefix `uri`, sorted."""
    bucket, prefix = split_gcs(uri)
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    pages = client().list_blobs(bucket, prefix=prefix, delimiter="/", retry=retry())
    for _ in pages:  # the prefixes are known once every page was read
        pass
    names = (p[len(prefix) :].rstrip("/") for p in pages.prefixes)
    return sorted(name for name in names if name)  # `data//x.png` makes the prefix `data//`


def object_info(uri: str) -> tuple[str, int, str, float, str] | None:
    """`list_objects`' entry of the object `uri`, or None when there is none."""
    bucket, name = split_gcs(uri)
    found = client().bucket(bucket).get_blob(name, retry=retry()) if name else None
    return _listed(bucket, found) if found is not None else None


def _listed(bucket: str, b) -> tuple[str, int, str, float, str]:
    return (
        f"{SCHEME}{bucket}/{b.name}",
        b.size or 0,
        str(b.generation or ""),
        b.updated.timestamp() if b.updated else 0.0,
        f"md5:{b.md5_hash}" if b.md5_hash else f"crc32c:{b.crc32c}" if b.crc32c else "",
    )


def read_head(uri: str, size: int) -> bytes:
    """The first `size` bytes of object `uri` (one ranged request); all of a shorter one."""
    from google.api_core import exceptions as gexc

    try:
        return blob(uri).download_as_bytes(start=0, end=size - 1, retry=retry())
    except gexc.RequestRangeNotSatisfiable:  # an empty object has no byte 0
        return b""


def read_versioned(uri: str) -> tuple[bytes | None, int]:
    """The object's content and generation; `(None, 0)` when it does not exist."""
    bucket, name = split_gcs(uri)
    found = client().bucket(bucket).get_blob(name, retry=retry())
    if found is None:
        return None, 0
    generation = int(found.generation)
    return found.download_as_bytes(if_generation_match=generation), generation


def write_if_generation(uri: str, data: bytes, generation: int) -> None:
    """Uploads with `ifGenerationMatch=generation`: the server refuses a stale writer."""
    from google.api_core import exceptions as gexc

    try:  # a conditional write is idempotent, so it is safe to retry
        blob(uri).upload_from_string(data, if_generation_match=generation, retry=retry())
    except gexc.PreconditionFailed as err:
        raise PreconditionFailed(f"{uri}: changed by another writer") from err
