"""`kftransfer run`: the whole DAG locally (kfp.local) on generated images, weights=none."""

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from devtools.imagegen import write_class_folders
from kftransfer.pipelines.backend_contract import executor_output_problems
from kftransfer.pipelines.cli import cli


def run(tmp_path, export: str) -> tuple[dict, float]:
    start = time.monotonic()
    result = CliRunner().invoke(cli, [
        "run", str(tmp_path / "data"), "--pipeline-root", str(tmp_path / "runs"),
        "--backbone", "vgg16", "--weights", "none", "--image-size", "32", "--head-normalize",
        "--val-fraction", "0.25", "--test-fraction", "0.25", "--min-images-per-class", "5",
        "--head-epochs", "20", "--fine-tune-epochs", "1", "--fine-tune-batch-size", "16",
        "--export", export, "--cache-uri", str(tmp_path / "cache"), "--extract-parts", "2",
        "--cache", "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), time.monotonic() - start


def test_whole_dag_runs_locally_then_is_cached(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"red": 20, "green": 20, "blue": 20})
    export = str(tmp_path / "models")
    summary, seconds = run(tmp_path, export)
    assert summary["head"]["test_accuracy"] >= 0.9
    assert 0 <= summary["fine_tuned"]["test_accuracy"] <= 1
    assert summary["fine_tuned"]["initial_val_accuracy"] == summary["head"]["val_accuracy"]
    assert summary["blessed"] is True and summary["reasons"][0].startswith("PASS")
    latest = Path(os.path.join(export, "latest")).read_text()
    assert summary["exported"] == os.path.join(export, latest)
    assert os.path.isfile(os.path.join(summary["exported"], "saved_model.pb"))
    # every artifact URI stays the one KFP provisioned, no metadata value is None: the
    # rules a cluster's launcher enforces (docs/kfp-backend.md)
    assert executor_output_problems(summary["run"]) == []
    assert summary["report"].endswith("report.html")  # opens in a browser
    assert Path(summary["report"]).read_text().startswith("<!doctype html>")
    evaluation = json.loads(Path(summary["run"], "evaluate-model", "evaluation.json").read_text())
    assert evaluation["verdict"]["blessed"] is True
    assert set(summary["artifacts"]) == {
        "fingerprint-source",
        "split-data",
        "merge-features",
        "train-head",
        "fine-tune",
        "evaluate-model",
        "export-model",
    }  # fmt: skip - the parts' extraction runs in the loop's iteration folders
    run_folders = os.listdir(summary["run"])
    assert "merge-features" in run_folders  # the ParallelFor's parts were merged
    assert sorted(name for name in run_folders if name.startswith("for-loop")) == [
        "for-loop-2-iteration-0", "for-loop-2-iteration-1"
    ]  # fmt: skip
    assert seconds < 300, f"the local DAG took {seconds:.0f} s"
    assert set(summary["seconds"]) >= {"split-data", "train-head", "fine-tune", "total"}
    steps = sum(value for task, value in summary["seconds"].items() if task != "total")
    assert steps <= summary["seconds"]["total"] + 0.5  # each step timed once, none overlap

    # The same run again, step cache on: only the source listing and the evaluation run,
    # and the identical model is not exported a second time.
    again, _ = run(tmp_path, export)
    ran = {
        name for name in os.listdir(again["run"]) if os.path.isdir(os.path.join(again["run"], name))
    }
    assert ran == {"fingerprint-source", "evaluate-model"}
    assert again["blessed"] is False
    assert (
        "FAIL: the same weights as the production model: nothing new to export" in again["reasons"]
    )
    assert Path(os.path.join(export, "latest")).read_text() == os.path.basename(summary["exported"])


def test_a_failing_step_is_one_clear_line(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"only": 12})
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "data"), "--weights", "none",
                                      "--pipeline-root", str(tmp_path / "runs")])  # fmt: skip
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: step split-data failed: only one class ('only') in {tmp_path}")
    assert last.endswith(f"; full log: {tmp_path / 'runs' / 'last-run.log'}")


def test_verbose_shows_kfp_locals_whole_output(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"only": 12})
    args = ["run", str(tmp_path / "data"), "--weights", "none"]
    quiet = CliRunner().invoke(cli, [*args, "--pipeline-root", str(tmp_path / "a")])
    loud = CliRunner().invoke(cli, ["-v", *args, "--pipeline-root", str(tmp_path / "b")])
    assert "Executing task" not in quiet.stderr
    assert "Executing task" in loud.stderr  # kfp.local's own lines, with -v only
