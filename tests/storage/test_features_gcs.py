"""Images read from gs:// by the input pipeline, and the feature cache in a bucket."""

import numpy as np

from devtools.imagegen import write_class_folders
from kftransfer.components.core import listing, storage
from kftransfer.components.core.config import ExtractConfig, SplitConfig
from kftransfer.components.core.features import extract_features
from kftransfer.components.core.images import image_dataset
from kftransfer.components.core.shards import load_split
from kftransfer.components.core.split import split_dataset, write_split
from tests.unit.test_features import check_a_file_changed_after_the_split_is_not_cached

CONFIG = ExtractConfig(backbone="mobilenet_v2", weights="none", image_size=32, batch_size=8)


def test_gcs_images_decode_like_local_ones_and_missing_ones_are_dropped(gcs_bucket, tmp_path):
    local = write_class_folders(str(tmp_path / "d"), {"a": 5, "b": 5})
    remote = write_class_folders(f"{gcs_bucket}/d", {"a": 5, "b": 5})
    batches = [
        list(image_dataset(uris + [storage.join(root, "gone.png")], list(range(11)), 24, 4))
        for uris, root in [(local, str(tmp_path / "d")), (remote, f"{gcs_bucket}/d")]
    ]
    images = [np.concatenate([b[0].numpy() for b in run]) for run in batches]
    indices = [np.concatenate([b[2].numpy() for b in run]) for run in batches]
    assert images[0].shape == (10, 24, 24, 3) and images[0].dtype == np.uint8
    np.testing.assert_array_equal(images[0], images[1])
    assert indices[0].tolist() == indices[1].tolist() == list(range(10))


def test_feature_cache_and_output_in_a_bucket(gcs_bucket):
    split_config = SplitConfig(val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    write_class_folders(f"{gcs_bucket}/data", {"red": 8, "blue": 8})
    write_split(split_dataset(f"{gcs_bucket}/data", split_config), f"{gcs_bucket}/split")
    cache = f"{gcs_bucket}/cache"
    first = extract_features(f"{gcs_bucket}/split", f"{gcs_bucket}/f1", CONFIG, cache_uri=cache)
    second = extract_features(f"{gcs_bucket}/split", f"{gcs_bucket}/f2", CONFIG, cache_uri=cache)
    assert sum(s["extracted"] for s in first["splits"].values()) == 16
    assert sum(s["reused"] for s in second["splits"].values()) == 16
    assert sum(s["extracted"] for s in second["splits"].values()) == 0
    names = [storage.relative_to(i.uri, cache) for i in listing.list_files(cache)]
    keys = [name for name in names if name.endswith(".keys")]
    # one chunk of features, and one of the pixels extraction decoded (for fine-tuning)
    assert sorted(name.split("/")[0] == "pixels" for name in keys) == [False, True]
    a, b = load_split(f"{gcs_bucket}/f1", "train"), load_split(f"{gcs_bucket}/f2", "train")
    np.testing.assert_array_equal(np.sort(a[0], axis=0), np.sort(b[0], axis=0))


def test_a_changed_gcs_object_is_skipped_not_cached_under_its_old_hash(gcs_bucket):
    split_config = SplitConfig(val_fraction=0.25, test_fraction=0.25, min_images_per_class=5)
    write_class_folders(f"{gcs_bucket}/data", {"red": 8, "blue": 8})
    write_split(split_dataset(f"{gcs_bucket}/data", split_config), f"{gcs_bucket}/split")
    check_a_file_changed_after_the_split_is_not_cached(f"{gcs_bucket}/split", gcs_bucket)
