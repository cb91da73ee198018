"""Content-keyed caches of rows computed from images: features, and decoded pixels.

A store holds rows (a feature vector, or a decoded image) keyed by the image's content
hash, under a root that names what computed them (local or gs://)::

    <root>/spec.json                what the rows stand for (backbone and weights, or size)
    <root>/chunks/<id>.npz          a column of up to CHUNK_BYTES of rows, and their sha256
    <root>/chunks/<id>.keys         the chunk's sha256 list, one per line (written last)

Chunk ids hash their content, so concurrent writers (parallel extraction pods) never
collide, and a chunk counts only once its `.keys` file exists. Unlike KFP's step cache,
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
            arrays = self.read_chunk(chunk_id)
            position = {sha: i for i, sha in enumerate(arrays["sha256"].tolist())}
            take = np.array([position[sha] for sha in wanted])
            yield arrays["sha256"][take], arrays[self.column][take]

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
        LOGGER.debug("%s store: wrote chunk %s (%d rows)", self.column, chunk_id, len(sha))

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
