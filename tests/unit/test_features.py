"""Feature extraction: shards and manifest, the content-keyed cache, skips, parts."""

import os

import numpy as np
import pytest

from devtools.imagegen import class_image, encode, write_class_folders
from kftransfer.components.core import pixels, shards, storage
from kftransfer.components.core.chunk_store import ChunkStore, pixel_store
from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.layout import SPLITS, read_labels, read_rows
from kftransfer.components.core.split import split_dataset, write_split

CONFIG = ExtractConfig(backbone="mobilenet_v2", weights="none", image_size=32, batch_size=8)


def test_shards_and_manifest_round_trip(split_folder, tmp_path):
    out = str(tmp_path / "features")
    manifest = extract_features(split_folder, out, CONFIG)
    assert manifest["dim"] == 1280 and manifest["dtype"] == "float16"
    assert manifest["labels"] == read_labels(split_folder)
    assert manifest == shards.read_manifest(out)
    for split in ("train", "validation", "test"):
        rows = read_rows(split_folder, split)
        info = manifest["splits"][split]
        assert info["rows"] == info["extracted"] == len(rows) and info["reused"] == 0
        arrays = list(shards.iter_shards(out, split))
        features = np.concatenate([a["features"] for a in arrays])
        assert features.shape == (len(rows), 1280) and features.dtype == np.float16
        by_sha = {row.sha256: manifest["labels"].index(row.label) for row in rows}
        sha = np.concatenate([a["sha256"] for a in arrays]).tolist()
        labels = np.concatenate([a["labels"] for a in arrays]).tolist()
        assert sorted(sha) == sorted(by_sha) and labels == [by_sha[s] for s in sha]


def test_small_shards_split_rows_and_hashes_are_checked(split_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_BYTES", 1)  # the 256-row floor: force several shards
    monkeypatch.setattr("kftransfer.components.core.features.rows_per_shard", lambda *_: 5)
    out = str(tmp_path / "features")
    manifest = extract_features(split_folder, out, CONFIG)
    entries = manifest["splits"]["train"]["shards"]
    assert [e["rows"] for e in entries][:-1] == [5] * (len(entries) - 1) and len(entries) >= 4
    features, labels = shards.load_split(out, "train")
    assert len(features) == len(labels) == manifest["splits"]["train"]["rows"]
    with open(os.path.join(out, entries[0]["file"]), "r+b") as shard:
        shard.seek(200)
        shard.write(b"\x00\x01\x02")
    with pytest.raises(UserError, match="train/00000.npz .* is corrupt: re-run extraction"):
        shards.load_split(out, "train")


def test_cache_reuses_rows_and_recomputes_only_new_content(tmp_path):
    data, split_out, cache = (
        str(tmp_path / "data"),
        str(tmp_path / "split"),
        str(tmp_path / "cache"),
    )
    split_config = SplitConfig(val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    write_class_folders(data, {"red": 12, "green": 12})
    write_split(split_dataset(data, split_config), split_out)
    first = extract_features(split_out, str(tmp_path / "f1"), CONFIG, cache_uri=cache)
    assert sum(s["extracted"] for s in first["splits"].values()) == 24

    second = extract_features(split_out, str(tmp_path / "f2"), CONFIG, cache_uri=cache)
    assert sum(s["extracted"] for s in second["splits"].values()) == 0
    assert sum(s["reused"] for s in second["splits"].values()) == 24
    for split in ("train", "test"):
        a, b = (
            shards.load_split(str(tmp_path / "f1"), split),
            shards.load_split(str(tmp_path / "f2"), split),
        )
        order_a, order_b = np.lexsort(a[0].T), np.lexsort(b[0].T)
        np.testing.assert_array_equal(a[0][order_a], b[0][order_b])

    write_class_folders(data, {"red": 2, "green": 1}, start=100)  # 3 new images
    changed = os.path.join(data, "red", "img_0000.png")
    with open(changed, "wb") as out:
        out.write(encode(class_image(0, 555)))  # same file name, new content
    write_split(split_dataset(data, split_config), split_out)
    third = extract_features(split_out, str(tmp_path / "f3"), CONFIG, cache_uri=cache)
    assert sum(s["extracted"] for s in third["splits"].values()) == 4
    assert sum(s["reused"] for s in third["splits"].values()) == 23


def test_a_rerun_reads_each_cache_chunk_once_for_all_splits(split_folder, tmp_path, monkeypatch):
    """Before: each split looked up every `.keys` file and read every chunk holding its rows:
    a chunk of all three splits was read three times."""
    cache = str(tmp_path / "cache")
    extract_features(split_folder, str(tmp_path / "f1"), CONFIG, cache_uri=cache)
    reads = []
    read_chunk, read_text = ChunkStore.read_chunk, storage.read_text
    monkeypatch.setattr(
        ChunkStore, "read_chunk", lambda self, i: (reads.append(i), read_chunk(self, i))[1]
    )
    monkeypatch.setattr(storage, "read_text", lambda uri: (reads.append(uri), read_text(uri))[1])
    manifest = extract_features(split_folder, str(tmp_path / "f2"), CONFIG, cache_uri=cache)
    assert all(manifest["splits"][s]["reused"] == manifest["splits"][s]["rows"] > 0 for s in SPLITS)
    keys = [r for r in reads if r.endswith(".keys") and "/pixels/" not in r]
    chunks = [r for r in reads if not r.endswith((".keys", ".csv", ".json"))]
    assert len(keys) == 1 and len(chunks) == 1  # one chunk: its keys and rows read once


def test_cache_is_keyed_by_the_backbone_setup(split_folder, tmp_path):
    cache = str(tmp_path / "cache")
    extract_features(split_folder, str(tmp_path / "a"), CONFIG, cache_uri=cache)
    other = ExtractConfig(backbone="mobilenet_v2", weights="none", image_size=48, batch_size=8)
    manifest = extract_features(split_folder, str(tmp_path / "b"), other, cache_uri=cache)
    assert sum(s["reused"] for s in manifest["splits"].values()) == 0
    assert sorted(os.listdir(cache))[-1] == "pixels" and len(os.listdir(cache)) == 3
    assert len(os.listdir(os.path.join(cache, "pixels"))) == 2  # decoded at both sizes


def test_image_that_no_longer_decodes_is_skipped_and_counted(split_folder, tmp_path):
    victim = read_rows(split_folder, "train")[0].uri
    with open(victim, "wb") as out:
        out.write(b"corrupted after the split")
    manifest = extract_features(split_folder, str(tmp_path / "f"), CONFIG)
    train = manifest["splits"]["train"]
    assert train["skipped"] == [victim]
    assert train["rows"] == len(read_rows(split_folder, "train")) - 1


def check_a_file_changed_after_the_split_is_not_cached(split_uri: str, root: str) -> None:
    """Extraction and the pixel cache skip a file whose content is no longer the split's.

    Before, its new content's features and pixels were kept under the split's hash of the
    old content, for every later run: the old image back (or a copy of it) was then
    served the other image's features, and fine-tuned on its pixels.
    """
    cache = storage.join(root, "cache")
    victim = read_rows(split_uri, "train")[0]
    original = storage.read_bytes(victim.uri)
    storage.write_bytes(victim.uri, encode(class_image(0, 777)))  # replaced after the split
    manifest = extract_features(split_uri, storage.join(root, "f1"), CONFIG, cache_uri=cache)
    assert manifest["splits"]["train"]["skipped"] == [victim.uri]
    fresh = pixel_store(storage.join(root, "fresh"), 24)
    pixels.fill(fresh, [victim.uri], [victim.sha256], 24)
    for store in (pixel_store(cache, 32), fresh):
        assert store.lookup({victim.sha256}) == {}

    storage.write_bytes(victim.uri, original)  # back as the split hashed it
    again = extract_features(split_uri, storage.join(root, "f2"), CONFIG, cache_uri=cache)
    assert again["splits"]["train"]["skipped"] == []
    assert again["splits"]["train"]["extracted"] == 1  # computed now, never from the cache


def test_a_file_changed_after_the_split_is_skipped_not_cached_under_its_old_hash(
    split_folder, tmp_path
):
    check_a_file_changed_after_the_split_is_not_cached(split_folder, str(tmp_path))


def test_parts_partition_the_rows(split_folder, tmp_path):
    counts = []
    for index in range(3):
        manifest = extract_features(
            split_folder, str(tmp_path / f"p{index}"), CONFIG, part=(index, 3)
        )
        assert manifest["part"] == {"index": index, "count": 3}
        counts.append(manifest["splits"]["train"]["rows"])
    assert sum(counts) == len(read_rows(split_folder, "train"))
    assert max(counts) - min(counts) <= 1


def test_bad_config_is_refused():
    with pytest.raises(UserError, match="--pooling 'mean': use avg, max or flatten"):
        ExtractConfig(pooling="mean")
