"""The split with its source and its output in a gs:// bucket (GCS emulator)."""

import os

from devtools.imagegen import broken_files, class_image, encode, write_class_folders
from devtools.proxy import Proxy
from kftransfer.components.core import storage, validation
from kftransfer.components.core.config import SplitConfig
from kftransfer.components.core.layout import read_labels, read_rows
from kftransfer.components.core.split import split_dataset, write_split

CONFIG = SplitConfig(val_fraction=0.2, test_fraction=0.2, seed=1, min_images_per_class=5)


def test_gcs_source_splits_like_the_same_local_folder(gcs_bucket, tmp_path):
    counts = {"cat": 15, "dog": 15, "owl": 15}
    write_class_folders(str(tmp_path / "data"), counts)
    write_class_folders(f"{gcs_bucket}/data", counts)
    for root in (str(tmp_path / "data"), f"{gcs_bucket}/data"):
        storage.write_bytes(storage.join(root, "cat", "empty.jpg"), broken_files()["empty.png"][0])
    local = split_dataset(str(tmp_path / "data"), CONFIG)
    remote = split_dataset(f"{gcs_bucket}/data", CONFIG)
    assert remote.stats["counts"] == local.stats["counts"]
    empty = f"{gcs_bucket}/data/cat/empty.jpg"
    assert remote.stats["skipped"] == [
        {"uri": empty, "reason": "zero_bytes", "detail": "the file is empty"}
    ]
    assert all(row.uri.startswith(f"{gcs_bucket}/data/") for row in remote.rows)

    write_split(remote, f"{gcs_bucket}/split")
    assert read_labels(f"{gcs_bucket}/split") == ["cat", "dog", "owl"]
    assert len(read_rows(f"{gcs_bucket}/split", "test")) == remote.stats["totals"]["test"]


def test_adding_images_in_the_bucket_moves_none(gcs_bucket):
    root = f"{gcs_bucket}/data"
    write_class_folders(root, {"cat": 20, "dog": 20})
    before = {row.uri: row.split for row in split_dataset(root, CONFIG).rows}
    write_class_folders(root, {"cat": 2, "dog": 2}, start=500)
    after = {row.uri: row.split for row in split_dataset(root, CONFIG).rows}
    assert len(after) == 44
    assert {uri: after[uri] for uri in before} == before


def test_gcs_csv_source(gcs_bucket):
    uris = write_class_folders(f"{gcs_bucket}/imgs", {"cat": 8, "dog": 8})
    text = "uri,label\n" + "\n".join(f"{u.split('/imgs/')[1]},{u.split('/')[-2]}" for u in uris)
    storage.write_text(f"{gcs_bucket}/imgs/labels.csv", text)
    result = split_dataset(f"{gcs_bucket}/imgs/labels.csv", CONFIG)
    assert sorted(row.uri for row in result.rows) == sorted(uris)


def test_a_video_in_the_bucket_is_judged_by_its_first_bytes(gcs_bucket, monkeypatch):
    # A phone's export holds videos of GBs beside the photos: each was downloaded whole.
    root = f"{gcs_bucket}/data"
    write_class_folders(root, {"cat": 6, "dog": 6})
    video = f"{root}/cat/IMG_0001.MOV"
    header = b"\0\0\0\x14ftypqt  \0\0\0\0qt  "
    storage.write_bytes(video, header.ljust(validation.LARGE_FILE_BYTES + (1 << 20), b"\0"))
    with Proxy(os.environ["STORAGE_EMULATOR_HOST"]) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        result = split_dataset(root, CONFIG)
    assert [(s["uri"], s["reason"]) for s in result.stats["skipped"]] == [(video, "not_an_image")]
    assert len(result.rows) == 12
    (video_path,) = [path for path in proxy.sent if path.endswith("IMG_0001.MOV")]
    assert proxy.sent[video_path] == validation.HEADER_BYTES  # not its 33 MiB


def test_a_doubled_slash_in_an_object_name_is_no_empty_class(gcs_bucket):
    # Before: `data//dog/x.png` (an upload script's doubled slash) was of the class ''.
    root = f"{gcs_bucket}/data"
    write_class_folders(root, {"cat": 6, "dog": 6})
    doubled = f"{gcs_bucket}/data//dog/doubled.png"
    storage.write_bytes(doubled, encode(class_image(1, 99)))
    labels = {row.uri: row.label for row in split_dataset(root, CONFIG).rows}
    assert set(labels.values()) == {"cat", "dog"} and labels[doubled] == "dog"
