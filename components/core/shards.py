"""Feature shards: `.npz` files of (features, label ids, sha256) rows, written and streamed.

A features folder holds `manifest.json` and `<split>/NNNNN.npz` shards. Shards are written
one at a time as rows arrive, so memory never holds more than one shard; they are read
back with `allow_pickle=False` and checked against the hashes in the manifest.
"""

import hashlib
import io
import struct
import zipfile

import numpy as np

from kftransfer.components.core import layout, storage
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.layout import FeatureSpec, read_manifest

SHARD_BYTES = 64 << 20  # target size of one shard
NPY_HEADER_MAX = 1 << 16  # an .npy header is far shorter


def rows_per_shard(dim: int, dtype: str) -> int:
    """How many rows of `dim` features of `dtype` make a shard of about SHARD_BYTES."""
    return max(256, SHARD_BYTES // (dim * np.dtype(dtype).itemsize))


def encode_npz(**arrays: np.ndarray) -> bytes:
    """The bytes of an uncompressed `.npz` holding `arrays`."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of `.npz` bytes, loaded without pickle.

    Uncompressed members (all that `encode_npz` writes) are read-only views into `data`:
    no copy and no second checksum of a 64 MB chunk (its hash was checked on download or
    against the manifest), which `np.load` would spend more time on than the read itself.
    """
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type == zipfile.ZIP_STORED:
                arrays[name] = _stored_array(data, info)
            else:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member, allow_pickle=False)
    return arrays


def _stored_array(data: bytes, info: zipfile.ZipInfo) -> np.ndarray:
    """The `.npy` member `info` of the zip bytes `data`, as a view into them."""
    local_header = info.header_offset
    name_length, extra_length = struct.unpack_from("<HH", data, local_header + 26)
    start = local_header + 30 + name_length + extra_length
    header = io.BytesIO(data[start : start + min(info.file_size, NPY_HEADER_MAX)])
    version = np.lib.format.read_magic(header)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
        version, np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(header)
    if dtype.hasobject:
        raise ValueError(f"{info.filename}: object arrays are not loaded (no pickle)")
    count = int(np.prod(shape, dtype=np.int64))
    array = np.frombuffer(data, dtype, count=count, offset=start + header.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")


class ShardWriter:
    """Buffers rows of one split and writes a shard whenever `rows` rows are buffered.

    Args:
        folder: the features folder (local or gs://).
        split: the split name, also the shards' subfolder.
        rows: rows per shard.
        dtype: the stored feature dtype.
    """

    def __init__(self, folder: str, split: str, rows: int, dtype: str):
        self.folder, self.split, self.rows, self.dtype = folder, split, rows, dtype
        self.shards: list[dict] = []
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffered = 0

    def add(self, features: np.ndarray, labels: np.ndarray, sha256: np.ndarray) -> None:
        """Appends rows; writes full shards out."""
        self._parts.append((features.astype(self.dtype), labels.astype(np.int32), sha256))
        self._buffered += len(labels)
        while self._buffered >= self.rows:
            self._flush(self.rows)

    def close(self) -> list[dict]:
        """Writes the last partial shard; returns the manifest entries of all shards."""
        if self._buffered:
            self._flush(self._buffered)
        return self.shards

    def _flush(self, count: int) -> None:
        features, labels, sha = (
            np.concatenate(column) for column in zip(*self._parts, strict=True)
        )
        rest = (features[count:], labels[count:], sha[count:])
        self._parts = [rest] if len(rest[1]) else []
        self._buffered = len(rest[1])
        data = encode_npz(features=features[:count], labels=labels[:count], sha256=sha[:count])
        name = layout.shard_file(self.split, len(self.shards))
        storage.write_bytes(storage.join(self.folder, name), data)
        self.shards.append(
            {"file": name, "rows": count, "sha256": hashlib.sha256(data).hexdigest()}
        )


def read_shard(folder: str, entry: dict) -> dict[str, np.ndarray]:
    """One shard's arrays, after checking its bytes against the manifest's hash."""
    data = storage.read_bytes(storage.join(folder, entry["file"]))
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise UserError(f"feature shard {entry['file']} in {folder} is corrupt: re-run extraction")
    return decode_npz(data)


def iter_shards(folder: str, split: str, manifest: dict | None = None):
    """Yields the arrays of each shard of `split`, one shard in memory at a time."""
    manifest = manifest or read_manifest(folder)
    for entry in manifest["splits"][split]["shards"]:
        yield read_shard(folder, entry)


def load_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """All `(features, labels)` of a split in memory (for small sets and evaluation)."""
    features, labels, _ = load_keyed_split(folder, split)
    return features, labels


def load_keyed_split(folder: str, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All `(features, labels, sha256)` of a split in memory: rows keyed by image content."""
    manifest = read_manifest(folder)
    parts = list(iter_shards(folder, split, manifest))
    if not parts:
        empty = np.zeros((0,), np.int32)
        return np.zeros((0, manifest["dim"]), manifest["dtype"]), empty, empty.astype(str)
    columns = ("features", "labels", "sha256")
    return tuple(np.concatenate([p[key] for p in parts]) for key in columns)


def merge_parts(part_uris: list[str], out_uri: str) -> dict:
    """Merges the features folders of parallel extraction parts into one; returns its manifest.

    Shards are copied (renumbered), never loaded; counts are summed.

    Raises:
        UserError: the parts were extracted with different settings.
    """
    manifests = [read_manifest(uri) for uri in part_uris]
    first = manifests[0]
    for uri, manifest in zip(part_uris, manifests, strict=True):
        same_spec = FeatureSpec.from_manifest(manifest) == FeatureSpec.from_manifest(first)
        same_rows = (manifest["dim"], manifest["labels"]) == (first["dim"], first["labels"])
        if not (same_spec and same_rows):
            raise UserError(
                f"feature part {uri} was extracted with other settings or labels than "
                f"{part_uris[0]}: re-run the extraction"
            )
    merged = {
        **first,
        "part": {"index": 0, "count": 1},
        "splits": {},
        "parts": len(part_uris),
        "images_per_second": sum(m.get("images_per_second", 0) for m in manifests),
    }
    for split in first["splits"]:
        entries, summary = [], {"rows": 0, "reused": 0, "extracted": 0, "skipped": []}
        for uri, manifest in zip(part_uris, manifests, strict=True):
            info = manifest["splits"][split]
            for key in ("rows", "reused", "extracted", "skipped"):
                summary[key] += info[key]
            for entry in info["shards"]:
                name = layout.shard_file(split, len(entries))
                storage.copy(storage.join(uri, entry["file"]), storage.join(out_uri, name))
                entries.append({**entry, "file": name})
        merged["splits"][split] = {**summary, "shards": entries}
    layout.write_manifest(out_uri, merged)
    return merged


def manifest_summary(manifest: dict) -> dict:
    """The headline numbers of a features manifest, for the artifact's metadata."""
    splits = manifest["splits"].values()
    return {
        **{f"{split}_rows": info["rows"] for split, info in manifest["splits"].items()},
        "extracted": sum(info["extracted"] for info in splits),
        "reused": sum(info["reused"] for info in splits),
        "backbone": manifest["backbone"],
        "dim": manifest["dim"],
    }
