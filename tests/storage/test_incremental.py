"""A rerun after new images arrive reads and decodes only them: split, extraction, pixels.

The same tests run on a local folder and on a gs:// bucket (GCS emulator), through the
counters each step keeps (`stats["validation"]`, the features manifest, the pixel fill).
"""

from devtools.imagegen import broken_files, class_image, encode, write_class_folders
from kftransfer.components.core import layout, listing, pixels, storage, validation_cache
from kftransfer.components.core.chunk_store import pixel_store
from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.sources import fingerprint
from kftransfer.components.core.split import split_dataset, write_split

CONFIG = SplitConfig(val_fraction=0.2, test_fraction=0.2, min_images_per_class=5)
EXTRACT = ExtractConfig(backbone="vgg16", weights="none", image_size=32)


def split_files(result) -> dict:
    return {r.uri: (r.label, r.sha256, r.split) for r in result.rows}, result.stats["skipped"]


def test_a_resplit_reads_only_new_or_changed_files_and_equals_a_cold_split(root):
    data, cache = storage.join(root, "data"), storage.join(root, "cache")
    write_class_folders(data, {"cat": 20, "dog": 20})
    storage.write_bytes(storage.join(data, "dog", "notes.jpg"), broken_files()["notes.jpg"][0])
    first = split_dataset(data, CONFIG, cache)
    assert first.stats["validation"] == {"checked": 41, "reused": 0}
    write_class_folders(data, {"cat": 2, "dog": 2}, start=500)  # +10%
    changed = storage.join(data, "cat", "img_0003.png")
    storage.write_bytes(changed, encode(class_image(1, 77)))  # rewritten: a new image
    again = split_dataset(data, CONFIG, cache)
    assert again.stats["validation"] == {"checked": 5, "reused": 40}
    assert split_files(again) == split_files(split_dataset(data, CONFIG))  # = a cold split
    assert again.stats["skipped"][0]["reason"] == "not_an_image"  # verdicts are kept too


def test_a_csv_sources_resplit_reads_only_changed_files_and_its_fingerprint_sees_them(root):
    """Before: a CSV's files had no listing, so every split read all of them, and the
    source's fingerprint (the CSV's bytes) missed a named file replaced in place: the
    pipeline reused the cached split, with the old content's hash."""
    data, cache = storage.join(root, "data"), storage.join(root, "cache")
    uris = write_class_folders(data, {"cat": 20, "dog": 20})
    csv_uri = storage.join(root, "labels.csv")
    rows = "".join(f"{uri},{uri.split('/')[-2]}\n" for uri in uris)
    storage.write_text(csv_uri, "uri,label\n" + rows)
    first = split_dataset(csv_uri, CONFIG, cache)
    assert first.stats["validation"] == {"checked": 40, "reused": 0}
    before = fingerprint(csv_uri)
    assert fingerprint(csv_uri) == before
    storage.write_bytes(uris[3], encode(class_image(1, 77)))  # replaced; the CSV unchanged
    assert fingerprint(csv_uri) != before
    again = split_dataset(csv_uri, CONFIG, cache)
    assert again.stats["validation"] == {"checked": 1, "reused": 39}
    assert split_files(again) == split_files(split_dataset(csv_uri, CONFIG))  # = a cold split


def test_a_bucket_csv_lists_its_folders_instead_of_a_request_per_file(gcs_bucket, monkeypatch):
    """Before: one metadata request per file the CSV names, in each of three steps a run
    (precheck, fingerprint, split): 3 N requests a night where a folder costs N / 1000."""
    from kftransfer.components.core import csv_source, gcs

    data = storage.join(gcs_bucket, "data")
    uris = write_class_folders(data, {"cat": 30, "dog": 30})
    csv_uri = storage.join(gcs_bucket, "labels.csv")
    rows = "".join(f"{uri},{uri.split('/')[-2]}\n" for uri in uris[:-5])  # not all of them
    storage.write_text(csv_uri, "uri,label\n" + rows + f"{data}/cat/gone.png,cat\n")
    each = {uri: listing.file_info(uri) for uri in uris}
    requests = []
    object_info = gcs.object_info
    monkeypatch.setattr(gcs, "object_info", lambda uri: (requests.append(uri), object_info(uri))[1])
    found = csv_source.discover_csv(csv_uri)
    assert requests == [f"{data}/cat/gone.png"]  # only the file no listing gave
    assert {c.uri: c.listed for c in found.candidates} == {
        **{uri: each[uri] for uri in uris[:-5]},
        f"{data}/cat/gone.png": None,
    }


def test_the_same_folder_spelled_another_way_reuses_its_verdicts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_class_folders("data", {"cat": 6, "dog": 6})
    assert split_dataset("./data", CONFIG, "cache").stats["validation"]["checked"] == 12
    for spelling in ("data/", str(tmp_path / "data")):  # before: 12 read again each time
        validation = split_dataset(spelling, CONFIG, "cache").stats["validation"]
        assert validation == {"checked": 0, "reused": 12}


def test_extraction_fills_the_pixel_store_so_training_decodes_nothing(root):
    data, cache = storage.join(root, "data"), storage.join(root, "cache")
    write_class_folders(data, {"red": 12, "blue": 12})
    splits = storage.join(root, "split")
    write_split(split_dataset(data, CONFIG, cache), splits)
    manifest = extract_features(splits, storage.join(root, "f1"), EXTRACT, cache)
    rows = [r for s in layout.SPLITS for r in layout.read_rows(splits, s)]
    uris, shas = [r.uri for r in rows], [r.sha256 for r in rows]
    store = pixel_store(cache, 32)
    assert pixels.fill(store, uris, shas, 32) == {"decoded": 0, "reused": len(rows)}
    # the stored pixels are the decoded ones, in any order and at any read size
    stored = {}
    for images, _, index in pixels.dataset(store, shas, [0] * len(rows), 5, shuffle_seed=3):
        stored.update(zip(index.numpy().tolist(), images.numpy(), strict=True))
    for images, _, index in image_dataset(uris, [0] * len(rows), 32, 8):
        for image, i in zip(images.numpy(), index.numpy().tolist(), strict=True):
            assert (stored[i] == image).all()
    # +10% images: extraction runs the backbone over them only, and decodes them only
    write_class_folders(data, {"red": 2, "blue": 2}, start=500)
    write_split(split_dataset(data, CONFIG, cache), splits)
    manifest = extract_features(splits, storage.join(root, "f2"), EXTRACT, cache)
    totals = {k: sum(s[k] for s in manifest["splits"].values()) for k in ("extracted", "reused")}
    assert totals == {"extracted": 4, "reused": 24}
    rows = [r for s in layout.SPLITS for r in layout.read_rows(splits, s)]
    fill = pixels.fill(store, [r.uri for r in rows], [r.sha256 for r in rows], 32)
    assert fill == {"decoded": 0, "reused": 28}


def test_nightly_record_files_are_merged_and_every_verdict_survives(root, monkeypatch):
    monkeypatch.setattr(validation_cache, "COMPACT_AFTER", 3)
    data, cache = storage.join(root, "data"), storage.join(root, "cache")
    write_class_folders(data, {"cat": 5, "dog": 5})
    for night in range(4):  # one record file per run with new images, merged at the third
        write_class_folders(data, {"cat": 1}, start=100 + night)
        result = split_dataset(data, CONFIG, cache)
        files = listing.list_files(storage.join(cache, validation_cache.FOLDER))
        assert len(files) == [1, 2, 1, 2][night], [f.uri for f in files]
    assert result.stats["validation"] == {"checked": 1, "reused": 13}
    again = split_dataset(data, CONFIG, cache)
    assert again.stats["validation"] == {"checked": 0, "reused": 14}


def test_a_long_split_checkpoints_its_verdicts_and_merges_them_at_the_end(root, monkeypatch):
    monkeypatch.setattr(validation_cache, "CHECKPOINT_SECONDS", 0.0)  # a file per image read
    data, cache = storage.join(root, "data"), storage.join(root, "cache")
    write_class_folders(data, {"cat": 6, "dog": 6})
    assert split_dataset(data, CONFIG, cache).stats["validation"] == {"checked": 12, "reused": 0}
    files = listing.list_files(storage.join(cache, validation_cache.FOLDER))
    assert len(files) == 1  # 12 checkpoints, over COMPACT_AFTER: merged into one
    again = split_dataset(data, CONFIG, cache)
    assert again.stats["validation"] == {"checked": 0, "reused": 12}
