"""Content-keyed caches of rows computed from images: features, and decoded pixels.

A store holds rows (a feature vector, or a decoded image) keyed by the image's content
hash, under a root that names what computed them (local or gs://)::

    <root>/spec.json                what the rows stand for (backbone and weights, or size)
    <root>/chunks/<id>.npz          a column of up to CHUNK_BYTES of rows, and their sha256
    <root>/chunks/<id>.keys         the chunk's sha256 list, one per line (written last)

Chunk ids hash their content, so concurrent writers (parallel extraction pods) never
collide, and a chunk counts only once its `.keys` file exists. Each run adds a part-filled
chunk or two (its new images); once a store holds more than COMPACT_AFTER of them they are
merged into full ones (`compact`), so what a lookup reads, and an epoch's chunk reads,
follow the data, not the number of past runs. A reader whose chunk was merged away meanwhile
finds its rows again (`read_rows`). Unlike KFP's step cache,
which reruns a whole step when its input changes, a store reuses every row already
computed: retraining after adding 10% new images computes those 10% only.

`feature_store` is the feature cache (keyed by `layout.FeatureSpec.cache_key()`: backbone,
weights fingerprint, image size, pooling, preprocessing, feature layer, dtype, decode);
`pixel_store` keeps images decoded and resized for training (`pixels.py`).
"""

import collections
import hashlib
import json
import time
from collections.abc import Iterator

import numpy as np

from kftransfer.components.core import layout, listing, storage
from kftransfer.components.core.images import DECODE_VERSION
from kftransfer.components.core.layout import FeatureSpec
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.shards import SHARD_BYTES, decode_npz, encode_npz

LIST_THREADS = 16
# The most computing a killed writer loses: rows queued this long are written as a
# (smaller) chunk. On a cluster a stopped pod's step gets about a second after SIGTERM
# (docs/kfp-backend.md), too little to count on the last flush.
FLUSH_SECONDS = 60.0
COMPACT_AFTER = 8  # part-filled chunks (under half full) a store keeps before merging them
KEY_LINE_BYTES = 65  # a sha256 in hex and a newline: a `.keys` file's bytes per row


class ChunkStore:
    """Reads and extends one store of rows (see the module docstring).

    Args:
        root: the store's folder (local or gs://).
        spec: what the rows stand for (JSON-able), written once to `spec.json`.
        column: the name of the row array in each chunk (`features`, `images`).
        row_bytes: the size of one row, to size chunks.
    """

    def __init__(self, root: str, spec: dict, column: str, row_bytes: int):
        self.root, self.spec, self.column = root, spec, column
        self.chunk_rows = max(16, SHARD_BYTES // row_bytes)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._oldest_pending = 0.0  # when the oldest queued row was queued (monotonic)
        self._flushed: list[str] = []  # ids of the chunks this object wrote
        self.written = 0

    def lookup(self, sha256s: set[str]) -> dict[str, str]:
        """Maps each of `sha256s` found in the store to the id of the chunk holding it."""
        keys = [i.uri for i in self._list_chunks() if i.uri.endswith(layout.CHUNK_KEYS_SUFFIX)]
        found: dict[str, str] = {}
        reads = map_ordered(lambda u: (u, storage.read_text(u)), keys, threads=LIST_THREADS)
        for uri, text in reads:
            chunk_id = storage.basename(uri).removesuffix(layout.CHUNK_KEYS_SUFFIX)
            for sha in text.split():
                if sha in sha256s:
                    found[sha] = chunk_id
        return found

    def read_chunk(self, chunk_id: str) -> dict[str, np.ndarray]:
        """A chunk's arrays: `sha256` and the row column (one large sequential read)."""
        return decode_npz(storage.read_bytes(self._chunk_uri(chunk_id, layout.CHUNK_ROWS_SUFFIX)))

    def read_rows(self, hits: dict[str, str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields `(sha256 array, rows)` of the hit rows, one chunk at a time."""
        by_chunk = collections.defaultdict(list)
        for sha, chunk_id in hits.items():
            by_chunk[chunk_id].append(sha)
        for chunk_id, wanted in sorted(by_chunk.items()):
            yield np.array(wanted), self.chunk_rows_of(chunk_id, wanted)

    def chunk_rows_of(self, chunk_id: str, wanted: list[str]) -> np.ndarray:
        """The rows of `wanted` (sha256s, in that order) from the chunk `lookup` named.

        When that chunk is gone (merged by `compact` in another run since the lookup),
        they are looked up again and read from where they are now.

        Raises:
            NotFoundError: a row is in no chunk any more.
        """
        try:
            found = [self.read_chunk(chunk_id)]
        except storage.NotFoundError:
            LOGGER.info("%s store: chunk %s was merged: finding its rows", self.column, chunk_id)
            found = [self.read_chunk(c) for c in sorted(set(self.lookup(set(wanted)).values()))]
        rows, filled = None, np.zeros(len(wanted), dtype=bool)
        for arrays in found:
            where = {sha: i for i, sha in enumerate(arrays["sha256"].tolist())}
            column = arrays[self.column]
            if rows is None:
                rows = np.empty((len(wanted), *column.shape[1:]), column.dtype)
            at = [k for k, sha in enumerate(wanted) if sha in where and not filled[k]]
            rows[at] = column[[where[wanted[k]] for k in at]]
            filled[at] = True
        if not filled.all():
            missing = wanted[int(np.argmin(filled))]
            raise storage.NotFoundError(f"{self.root}: row {missing} is in no chunk any more")
        return rows

    def add(self, sha256: np.ndarray, rows: np.ndarray) -> None:
        """Queues new rows; writes them out once they fill a chunk or wait FLUSH_SECONDS."""
        if not self._pending:
            self._oldest_pending = time.monotonic()
        self._pending.append((sha256, rows))
        self._pending_rows += len(sha256)
        overdue = time.monotonic() - self._oldest_pending >= FLUSH_SECONDS
        if self._pending_rows >= self.chunk_rows or overdue:
            self.flush()

    def flush(self) -> None:
        """Writes queued rows as one chunk (the `.keys` file last, as its commit)."""
        if not self._pending:
            return
        sha = np.concatenate([s for s, _ in self._pending])
        rows = np.concatenate([r for _, r in self._pending])
        self._pending, self._pending_rows = [], 0
        keys = "\n".join(sha.tolist()) + "\n"
        chunk_id = hashlib.sha256(keys.encode()).hexdigest()[:32]
        spec_uri = storage.join(self.root, layout.CACHE_SPEC_FILE)
        if not storage.exists(spec_uri):
            storage.write_text(spec_uri, json.dumps(self.spec))
        data = encode_npz(sha256=sha, **{self.column: rows})
        storage.write_bytes(self._chunk_uri(chunk_id, layout.CHUNK_ROWS_SUFFIX), data)
        storage.write_text(self._chunk_uri(chunk_id, layout.CHUNK_KEYS_SUFFIX), keys)
        self.written += len(sha)
        self._flushed.append(chunk_id)
        LOGGER.debug("%s store: wrote chunk %s (%d rows)", self.column, chunk_id, len(sha))

    def compact(self) -> int:
        """Merges the part-filled chunks into full ones once there are more than COMPACT_AFTER.

        Each row is kept once. The merged chunks are written (committed by their `.keys`)
        before the parts are removed, `.keys` first, so a kill at any point leaves every
        row findable; a part another writer merged meanwhile is skipped (its rows are in
        that writer's chunks; at worst a row is stored twice). Returns the number of
        chunks merged (0 when below the limit).
        """
        part = [
            info.uri.removesuffix(layout.CHUNK_KEYS_SUFFIX)
            for info in self._list_chunks()
            if info.uri.endswith(layout.CHUNK_KEYS_SUFFIX)
            and info.size < KEY_LINE_BYTES * self.chunk_rows // 2
        ]
        if len(part) <= COMPACT_AFTER:
            return 0
        self.flush()
        written, seen, self._flushed = self.written, set(), []
        for prefix in part:
            try:
                arrays = self.read_chunk(storage.basename(prefix))
            except storage.NotFoundError:  # merged by another writer meanwhile
                continue
            new = np.array([sha not in seen for sha in arrays["sha256"].tolist()], dtype=bool)
            seen.update(arrays["sha256"].tolist())
            if new.any():
                self.add(arrays["sha256"][new], arrays[self.column][new])
        self.flush()
        self.written = written
        for prefix in part:
            if storage.basename(prefix) not in self._flushed:  # not rewritten as it was
                storage.remove(prefix + layout.CHUNK_KEYS_SUFFIX)
                storage.remove(prefix + layout.CHUNK_ROWS_SUFFIX)
        LOGGER.info("%s store: merged %d part-filled chunks into %d", self.column, len(part),
                    len(self._flushed))  # fmt: skip
        return len(part)

    def _chunk_uri(self, chunk_id: str, suffix: str) -> str:
        return storage.join(self.root, layout.CACHE_CHUNKS, chunk_id + suffix)

    def _list_chunks(self) -> list[listing.FileInfo]:
        return listing.list_files_if_any(storage.join(self.root, layout.CACHE_CHUNKS))


def feature_store(cache_uri: str, spec: FeatureSpec, dim: int) -> ChunkStore:
    """The feature cache entry of one backbone setup under `cache_uri`."""
    row_bytes = dim * np.dtype(spec.dtype).itemsize
    return ChunkStore(
        storage.join(cache_uri, spec.cache_key()), spec.to_json(), "features", row_bytes
    )


def pixel_store(cache_uri: str, image_size: int) -> ChunkStore:
    """The store of images decoded and resized to `image_size` under `cache_uri`."""
    spec = {"image_size": image_size, "decode": DECODE_VERSION}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]
    root = storage.join(cache_uri, layout.PIXELS_FOLDER, key)
    return ChunkStore(root, spec, "images", image_size * image_size * 3)
