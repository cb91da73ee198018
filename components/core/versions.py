"""Versions of an export destination: claimed, published whole, and pointed at by `latest`.

A destination (local or gs://) is a TF Serving / KServe model base path: every integer
folder is a version, the highest is served, and `latest` names the newest one exported.

    DEST/latest                   the current version's name
    DEST/<version>/               a published version (saved_model.pb, variables/, ...)
    DEST/.claims/<version>        a version name taken by an export under way
    DEST/.staging/<version>-<id>/ a version being written (not an integer: serving skips it)

Guarantees, for any number of concurrent exports and a kill at any instant:

- Version names are unique: a name is claimed with an exclusive create before it is used
  (local `O_EXCL`; GCS `ifGenerationMatch=0`), so two exports never share a folder.
- Local: a version appears whole, by one rename of its finished staging folder. No
  numbered folder is ever incomplete.
- GCS has no rename: the finished staging objects are copied into the numbered folder
  server-side, `saved_model.pb` last. A numbered folder with `saved_model.pb` is complete;
  while (or if a kill left it) without, TF Serving cannot load it and retries, and
  `latest` never names it. The next export removes such leftovers: numbered folders
  whose claim is still held (a user's own numbered folder, with no claim, is never).
- `latest` moves only after its version is published, and only forward: it ends at the
  highest version, whichever export finishes last (a compare-and-swap on its generation).
"""

import datetime
import os
import secrets
import shutil
import time

from kftransfer.components.core import folders, generations, layout, listing, storage
from kftransfer.components.core.errors import PreconditionFailed, UserError
from kftransfer.components.core.progress import LOGGER

CLAIMS = ".claims"
STAGING = ".staging"
LEFTOVER_SECONDS = 3600  # staging folders and claims older than this are abandoned
LATEST_ATTEMPTS = 10


def latest_version(destination: str) -> str | None:
    """The production version: the one `DEST/latest` names, or None before any export.

    When that version is gone (rolled back by deleting its folder, which makes TF Serving
    serve the highest one left), or `latest` itself is (deleted, or versions copied in by
    hand), the highest complete version, with a warning: what TF Serving serves.
    """
    pointer = storage.join(destination, layout.LATEST)
    try:
        named = storage.read_text(pointer).strip() or None
    except storage.NotFoundError:
        named = None
    if named is not None and _complete(destination, named):
        return named
    served = max(complete_versions(destination), key=int, default=None)
    if named is not None or served is not None:
        said = f"names version {named}, which is not there" if named else "is missing"
        instead = f"using {served}, the highest version" if served else "no version is left"
        LOGGER.warning("%s %s: %s (what TF Serving serves)", pointer, said, instead)
    return served


def complete_versions(destination: str) -> list[str]:
    """The numbered folders of `destination` that hold a whole version (`saved_model.pb`)."""
    found = set()
    for info in listing.list_files_if_any(destination):
        parts = storage.relative_to(info.uri, destination).split("/")
        if len(parts) == 2 and parts[0].isdigit() and parts[1] == layout.SAVED_MODEL_FILE:
            found.add(parts[0])
    return sorted(found, key=int)


def _complete(destination: str, version: str) -> bool:
    return storage.exists(storage.join(destination, version, layout.SAVED_MODEL_FILE))


def resolve_model_folder(uri: str) -> str:
    """An export destination (its latest version) or a version folder -> the version folder."""
    version = latest_version(uri)
    return storage.join(uri, version) if version else uri


def clock_version(now: datetime.datetime | None = None) -> int:
    """The UTC time in milliseconds as a 17-digit integer, `YYYYMMDDHHMMSSmmm`.

    Later than every 14-digit (second-resolution) version of earlier releases.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    return int(now.strftime("%Y%m%d%H%M%S%f")[:17])


def claim_version(destination: str, now: datetime.datetime | None = None) -> str:
    """Takes a version name no other export of `destination` has or will take."""
    version = clock_version(now)
    while True:
        name = str(version)
        if not storage.is_folder(storage.join(destination, name)) and _claim(destination, name):
            return name
        version += 1


def _claim(destination: str, name: str) -> bool:
    """Creates DEST/.claims/<name> if it does not exist; whether this call created it."""
    claim = storage.join(destination, CLAIMS, name)
    if storage.is_gcs(destination):
        try:
            generations.write_if_generation(claim, b"", 0)
            return True
        except PreconditionFailed:
            return False
    os.makedirs(os.path.dirname(claim), exist_ok=True)
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        return True
    except FileExistsError:
        return False


def publish(local_folder: str, destination: str, version: str) -> str:
    """Publishes a finished local folder as `DEST/<version>` (see the module docstring).

    Returns:
        The version's URI.
    """
    target = storage.join(destination, version)
    staging = storage.join(destination, STAGING, f"{version}-{secrets.token_hex(4)}")
    if storage.is_gcs(destination):
        folders.copy_folder(local_folder, staging)
        names = [storage.relative_to(info.uri, staging) for info in listing.list_files(staging)]
        for name in sorted(names, key=lambda n: n == layout.SAVED_MODEL_FILE):
            storage.copy(storage.join(staging, name), storage.join(target, name))
        for name in names:
            storage.remove(storage.join(staging, name))
    else:
        shutil.copytree(local_folder, staging)  # keeps a temp folder's mode, 0700
        for folder, _, files in os.walk(staging):
            os.chmod(folder, storage.FOLDER_MODE)  # a server of another uid must enter it
            for file in files:
                os.chmod(os.path.join(folder, file), storage.FILE_MODE)
        os.rename(staging, target)  # atomic; fails if another export published it
    storage.remove(storage.join(destination, CLAIMS, version))
    return target


def move_latest(destination: str, version: str) -> None:
    """Points `DEST/latest` at `version` unless it already names a higher one.

    A compare-and-swap on the pointer's generation, retried when another export moved it
    meanwhile: `latest` only moves forward, to the highest version exported.

    Raises:
        UserError: the pointer kept changing under this export.
    """
    pointer = storage.join(destination, layout.LATEST)
    for _ in range(LATEST_ATTEMPTS):
        current, generation = generations.read_versioned(pointer)
        named = (current or b"").decode().strip()
        if named.isdigit() and int(named) > int(version):
            LOGGER.info("latest stays at %s, newer than %s", named, version)
            return
        try:
            generations.write_if_generation(pointer, version.encode(), generation)
            return
        except PreconditionFailed:
            time.sleep(0.1)
    raise UserError(
        f"{pointer} kept changing while this export tried to move it; version {version} is "
        "complete but not latest: re-run, or point latest at it by hand"
    )


def remove_leftovers(destination: str, older_than: float = LEFTOVER_SECONDS) -> None:
    """Deletes what killed exports left, once older than `older_than` seconds.

    That is staging objects and claims, and (GCS) the numbered folders of versions whose
    copy a kill interrupted: no `saved_model.pb`, and their claim still held (an export
    gives its claim back only after the copy). Nothing else is touched: a numbered folder
    without a claim is not this tool's (a user's `2023/` beside the versions), and locally
    a version appears whole by one rename, so no local numbered folder is a leftover.
    """
    files = listing.list_files_if_any(destination)
    cutoff = time.time() - older_than
    if storage.is_gcs(destination):  # before the claims, which say which folders are ours
        _remove_unfinished_versions(destination, files, cutoff)
    for info in files:
        top = storage.relative_to(info.uri, destination).split("/")[0]
        if top in (STAGING, CLAIMS) and info.modified < cutoff:
            storage.remove(info.uri)


def _remove_unfinished_versions(
    destination: str, files: list[listing.FileInfo], cutoff: float
) -> None:
    """Deletes the numbered folders a killed copy left: claimed, without `saved_model.pb`."""
    claimed, by_version = set(), {}
    for info in files:
        parts = storage.relative_to(info.uri, destination).split("/")
        if parts[0] == CLAIMS and len(parts) == 2:
            claimed.add(parts[1])
        elif parts[0].isdigit() and len(parts) > 1:
            by_version.setdefault(parts[0], []).append(info)
    for version, infos in by_version.items():
        names = {storage.relative_to(i.uri, storage.join(destination, version)) for i in infos}
        if (
            version in claimed
            and layout.SAVED_MODEL_FILE not in names
            and all(i.modified < cutoff for i in infos)
        ):
            LOGGER.warning("removing %s: an export was killed while publishing it", version)
            for info in infos:
                storage.remove(info.uri)
