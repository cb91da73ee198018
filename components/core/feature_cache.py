"""Content-keyed feature cache: features of an image are computed once per backbone setup.

Layout under the cache URI (local or gs://)::

    <key>/spec.json                 what the key stands for (backbone, weights fingerprint, ...)
    <key>/chunks/<id>.npz           features + sha256 of up to CHUNK_BYTES of rows
    <key>/chunks/<id>.keys          the chunk's sha256 list, one per line (written last)

`key` is `layout.FeatureSpec.cache_key()` (backbone, weights fingerprint, image size,
pooling, preprocessing, feature layer, dtype): rows are reused only when all of them
match. Chunk ids hash their content, so concurrent writers (parallel extraction pods)
never collide, and a chunk counts only once its `.keys` file exists. Unlike KFP's step
cache, which reruns a whole step when its input changes, this reuses every row already
computed: retraining after adding 10% new images runs the backbone over those 10% only.
"""

import collections
import hashlib
import json

import numpy as np

from kftransfer.components.core import layout, storage
from kftransfer.components.core.layout import FeatureSpec
from kftransfer.components.core.parallel import map_ordered
from kftransfer.components.core.progress import LOGGER
from kftransfer.components.core.shards import SHARD_BYTES, decode_npz, encode_npz


class FeatureCache:
    """Reads and extends the cache entry of one backbone setup.

    Args:
        cache_uri: the cache's root (local or gs://).
        spec: what identifies the features.
        dim: feature dimension, to size chunks.
    """

    def __init__(self, cache_uri: str, spec: FeatureSpec, dim: int):
        self.root = storage.join(cache_uri, spec.cache_key())
        self.spec, self.dim = spec, dim
        self.chunk_rows = max(64, SHARD_BYTES // (dim * np.dtype(spec.dtype).itemsize))
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self.written = 0

    def lookup(self, sha256s: set[str]) -> dict[str, str]:
        """Maps each of `sha256s` found in the cache to the id of the chunk holding it."""
        keys = [i.uri for i in self._list_chunks() if i.uri.endswith(layout.CHUNK_KEYS_SUFFIX)]
        found: dict[str, str] = {}
        for uri, text in map_ordered(lambda u: (u, storage.read_text(u)), keys, threads=16):
            chunk_id = storage.basename(uri).removesuffix(layout.CHUNK_KEYS_SUFFIX)
            for sha in text.split():
                if sha in sha256s:
                    found[sha] = chunk_id
        return found

    def read_rows(self, hits: dict[str, str]):
        """Yields `(sha256 array, features)` of the hit rows, one chunk at a time."""
        by_chunk = collections.defaultdict(list)
        for sha, chunk_id in hits.items():
            by_chunk[chunk_id].append(sha)
        for chunk_id, wanted in sorted(by_chunk.items()):
            arrays = decode_npz(
                storage.read_bytes(self._chunk_uri(chunk_id, layout.CHUNK_ROWS_SUFFIX))
            )
            position = {sha: i for i, sha in enumerate(arrays["sha256"].tolist())}
            take = np.array([position[sha] for sha in wanted])
            yield arrays["sha256"][take], arrays["features"][take]

    def add(self, sha256: np.ndarray, features: np.ndarray) -> None:
        """Queues new rows; full chunks are written out."""
        self._pending.append((sha256, features))
        self._pending_rows += len(sha256)
        if self._pending_rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        """Writes queued rows as one chunk (the `.keys` file last, as its commit)."""
        if not self._pending:
            return
        sha = np.concatenate([s for s, _ in self._pending])
        features = np.concatenate([f for _, f in self._pending])
        self._pending, self._pending_rows = [], 0
        keys = "\n".join(sha.tolist()) + "\n"
        chunk_id = hashlib.sha256(keys.encode()).hexdigest()[:32]
        spec_uri = storage.join(self.root, layout.CACHE_SPEC_FILE)
        if not storage.exists(spec_uri):
            storage.write_text(spec_uri, json.dumps(self.spec.to_json()))
        storage.write_bytes(
            self._chunk_uri(chunk_id, layout.CHUNK_ROWS_SUFFIX),
            encode_npz(sha256=sha, features=features),
        )
        storage.write_text(self._chunk_uri(chunk_id, layout.CHUNK_KEYS_SUFFIX), keys)
        self.written += len(sha)
        LOGGER.debug("feature cache: wrote chunk %s (%d rows)", chunk_id, len(sha))

    def _chunk_uri(self, chunk_id: str, suffix: str) -> str:
        return storage.join(self.root, layout.CACHE_CHUNKS, chunk_id + suffix)

    def _list_chunks(self) -> list[storage.FileInfo]:
        try:
            return storage.list_files(storage.join(self.root, layout.CACHE_CHUNKS))
        except storage.NotFoundError:
            return []
