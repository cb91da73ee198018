"""A whole local run with everything in a gs:// bucket (GCS emulator), then a retraining run."""

import json
import os
from pathlib import Path

from click.testing import CliRunner

from devtools.imagegen import write_class_folders
from kftransfer.components.core import listing, storage
from kftransfer.pipelines.backend_contract import executor_output_problems
from kftransfer.pipelines.cli import cli


def run(bucket: str, pipeline_root: str) -> dict:
    result = CliRunner().invoke(cli, [
        "run", f"{bucket}/data", "--pipeline-root", pipeline_root,
        "--cache-uri", f"{bucket}/cache", "--export", f"{bucket}/models",
        "--checkpoint-uri", f"{bucket}/checkpoints",
        "--backbone", "vgg16", "--weights", "none", "--image-size", "32", "--head-normalize",
        "--min-images-per-class", "5", "--head-epochs", "15", "--fine-tune-epochs", "1",
        "--fine-tune-batch-size", "16", "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def extraction(summary: dict) -> dict:
    manifest = os.path.join(
        summary["artifacts"]["extract-bottlenecks"]["features"], "manifest.json"
    )
    splits = json.loads(Path(manifest).read_text())["splits"].values()
    return {key: sum(s[key] for s in splits) for key in ("extracted", "reused")}


def second_test_rows(summary: dict) -> int:
    """The test split's rows: fine-tuning reads the train and validation pixels only."""
    splits = summary["artifacts"]["split-data"]["splits"]
    return len(Path(splits, "test.csv").read_text().splitlines()) - 1


def names(uri: str) -> set[str]:
    return {storage.relative_to(info.uri, uri) for info in listing.list_files(uri)}


def test_run_on_gcs_then_retrain_after_adding_ten_percent(gcs_bucket, tmp_path):
    write_class_folders(f"{gcs_bucket}/data", {"red": 20, "green": 20, "blue": 20})
    first = run(gcs_bucket, str(tmp_path / "runs"))
    assert extraction(first) == {"extracted": 60, "reused": 0}
    assert first["blessed"] is True
    version = storage.read_text(f"{gcs_bucket}/models/latest")
    assert first["exported"] == f"{gcs_bucket}/models/{version}"
    # the export step's own artifact stays where KFP put it (a cluster's launcher refuses
    # any other URI); the version it wrote to the bucket is in its metadata
    assert executor_output_problems(first["run"]) == []
    pointer = json.loads(Path(first["artifacts"]["export-model"]["exported"]).read_text())
    assert pointer == {
        "version": version,
        "uri": first["exported"],
        "export_uri": f"{gcs_bucket}/models",
    }
    exported = names(f"{gcs_bucket}/models/{version}")
    assert {"saved_model.pb", "fingerprint.pb", "model.keras", "labels.json", "model_card.md",
            "evaluation.json", "variables/variables.index"} <= exported  # fmt: skip
    cache = names(f"{gcs_bucket}/cache")
    # the cache root holds the features, the decoded pixels and the validation verdicts
    assert sorted(name for name in cache if name.endswith("/spec.json"))[-1].startswith("pixels/")
    assert sum(name.endswith("/spec.json") for name in cache) == 2
    assert sum(name.startswith("validation/") for name in cache) == 1
    assert (
        sum(name.endswith(".keys") for name in cache)
        == sum(name.endswith(".npz") for name in cache)
        >= 1
    )
    assert names(f"{gcs_bucket}/checkpoints") == set()  # deleted after each successful stage

    write_class_folders(f"{gcs_bucket}/data", {"red": 2, "green": 2, "blue": 2}, start=500)
    second = run(gcs_bucket, str(tmp_path / "runs"))
    assert extraction(second) == {"extracted": 6, "reused": 60}  # the backbone ran on the new 10%
    # ... and only the new images were read and decoded by the split, and none by training
    stats_path = os.path.join(second["artifacts"]["split-data"]["splits"], "stats.json")
    assert json.loads(Path(stats_path).read_text())["validation"] == {"checked": 6, "reused": 60}
    evaluation = json.loads(Path(second["run"], "evaluation.json").read_text())
    tuned = evaluation["training"]["fine_tuned"]
    assert (tuned["pixels_decoded"], tuned["pixels_reused"]) == (0, 66 - second_test_rows(second))
    assert storage.read_text(f"{gcs_bucket}/models/latest") in (
        version,
        storage.basename(second["exported"] or ""),
    )
    assert evaluation["production_version"] == version  # compared with the first run's model
