"""Validation results per listed file, so a rerun reads and decodes only what is new.

A nightly split over a bucket of a million photos used to read and decode all of them.
The listing (which the split needs anyway) already says which files are unchanged: each
result is stored under a key made of what the listing tells, and a rerun checks only the
files whose key it has not seen. Results are identical to a cold split's.

    key    local: the absolute path, size, modification and change time (ns) and inode
           GCS:   the size and the listed MD5 (content, wherever it lives); for a
                  composite object without one, the path, size and generation

Layout under the cache root (`--cache-uri`, local or gs://)::

    validation/<settings key>/<id>.jsonl   one record per line, written whole; one
                                           file per run (and per CHECKPOINT_SECONDS of a
                                           long run's reading), merged every COMPACT_AFTER

`<settings key>` hashes `RECORD_FORMAT` and the settings a verdict depends on
(`--min-image-side`, `--max-image-pixels`). Only verdicts that follow from the file's
content are stored; an unreadable file (a storage error, maybe passing) is checked again.

A split that stops early (Ctrl-C, a preempted or killed pod, a storage error) keeps what
it read: new records are written every CHECKPOINT_SECONDS, and at once on an exception,
so the next split reads only the rest.
"""

import hashlib
import json
import os
import time

from kftransfer.components.core import listing, storage
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.validation import UNREADABLE, ImageCheck, extension_note

# check_image's verdicts; change it with them (4: a JPEG counts its 1/8 decode; 5: a
# progressive JPEG counts in full, and BMPs of a colour palette or 1 bit are unsupported)
RECORD_FORMAT = "5"
FOLDER = "validation"
RECORD_SUFFIX = ".jsonl"
READ_THREADS = 16
COMPACT_AFTER = 8  # record files (one per run that found new files) before merging them
CHECKPOINT_SECONDS = 60.0  # the most reading a split that is killed loses


def listing_key(info: listing.FileInfo) -> str:
    """What identifies a file's content in its listing (see the module docstring)."""
    if info.checksum.startswith("md5:"):
        return f"{info.checksum}:{info.size}"
    where = info.uri if storage.is_gcs(info.uri) else os.path.abspath(info.uri)
    return f"{where}\t{info.size}\t{info.version}"  # `./photos` and `photos/` alike


class ValidationCache:
    """The stored results for one set of validation settings under a cache root."""

    def __init__(self, cache_uri: str, config: SplitConfig):
        settings = [RECORD_FORMAT, config.min_image_side, config.max_image_pixels]
        key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]
        self.root = storage.join(cache_uri, FOLDER, key)
        self._files: list[str] = []  # the record files `load` read, then those written
        self._records: dict[str, dict] = {}  # their records
        self._new: dict[str, dict] = {}  # records not written yet
        self._written_at = time.monotonic()

    def load(self) -> dict[str, dict]:
        """Listing key -> stored record, from every record file (read in parallel)."""
        listed = listing.list_files_if_any(self.root)
        self._files = [i.uri for i in listed if i.uri.endswith(RECORD_SUFFIX)]
        for text in map_ordered(_read_if_present, self._files, threads=READ_THREADS):
            for line in text.splitlines():
                record = json.loads(line)
                self._records[record.pop("key")] = record
        return dict(self._records)

    def add(self, key: str, record: dict) -> None:
        """Keeps a new record; writes the new ones if CHECKPOINT_SECONDS have passed."""
        self._new[key] = record
        if time.monotonic() - self._written_at >= CHECKPOINT_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Writes the records added since the last write as one more file, if any."""
        if self._new:
            self._files.append(self._write(self._new))
            self._records.update(self._new)
            self._new = {}
        self._written_at = time.monotonic()

    def save(self) -> None:
        """Writes the new records, then merges the record files once there are enough.

        With `COMPACT_AFTER` files or more, all records are merged into one file and the
        merged files removed (after the merge is written, so a reader never misses a
        record; concurrent merges just write the same records). Files are named by their
        content, so two writers never collide.
        """
        self.checkpoint()
        if len(self._files) < COMPACT_AFTER:
            return
        merged = self._write(self._records)
        for uri in self._files:
            if uri != merged:
                storage.remove(uri)
        self._files = [merged]

    def _write(self, records: dict[str, dict]) -> str:
        text = "".join(
            json.dumps({"key": k, **r}, sort_keys=True) + "\n" for k, r in records.items()
        )
        uri = storage.join(self.root, hashlib.sha256(text.encode()).hexdigest()[:32])
        storage.write_text(uri + RECORD_SUFFIX, text)
        return uri + RECORD_SUFFIX


def _read_if_present(uri: str) -> str:
    """A record file's text; empty when a concurrent merge removed it meanwhile."""
    try:
        return storage.read_text(uri)
    except storage.NotFoundError:
        return ""


def to_record(check: ImageCheck) -> dict | None:
    """What to store of a verdict; None for one that does not follow from the content."""
    if check.problem == UNREADABLE:
        return None
    return {
        "sha256": check.sha256,
        "problem": check.problem,
        "detail": check.detail,
        "format": check.format,
    }


def from_record(uri: str, record: dict) -> ImageCheck:
    """The verdict a stored record gives the file at `uri` (its extension note included)."""
    note = "" if record["problem"] else extension_note(uri, record["format"])
    return ImageCheck(
        uri, record["sha256"], record["problem"], record["detail"], note, record["format"]
    )
