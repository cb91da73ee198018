"""`kftransfer run`: the whole DAG locally (kfp.local) on generated images, weights=none."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from devtools.imagegen import broken_files, write_class_folders
from kftransfer.pipelines.backend_contract import executor_output_problems
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.runs import interrupted_line
from tests.readme import json_schema
from tests.shell_job import AS_A_SHELL_JOB, press_ctrl_c

FAST = [
    "--backbone", "vgg16", "--weights", "none", "--image-size", "32", "--head-normalize",
    "--val-fraction", "0.25", "--test-fraction", "0.25", "--min-images-per-class", "5",
    "--head-epochs", "20", "--fine-tune-epochs", "1", "--fine-tune-batch-size", "16",
]  # fmt: skip


def run(tmp_path, export: str) -> tuple[dict, float]:
    start = time.monotonic()
    result = CliRunner().invoke(cli, [
        "run", str(tmp_path / "data"), "--pipeline-root", str(tmp_path / "runs"), *FAST,
        "--export", export, "--cache-uri", str(tmp_path / "cache"), "--extract-parts", "2",
        "--cache", "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), time.monotonic() - start  # stdout is one JSON document


def assert_follows_the_readme_schema(summary: dict) -> None:
    """Every key the README documents, with its type; no null where a number is promised."""
    for path, kinds in json_schema().items():
        value = summary
        for key in path.split("."):
            value = value[key]
        assert isinstance(value, kinds), f"{path}: {value!r} is not {kinds}"


def test_whole_dag_runs_locally_then_is_cached(tmp_path, monkeypatch):
    write_class_folders(str(tmp_path / "data"), {"red": 20, "green": 20, "blue": 20})
    (tmp_path / "system-tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "system-tmp"))  # the steps' /tmp
    export = str(tmp_path / "models")
    summary, seconds = run(tmp_path, export)
    # before: each step left a folder of kfp.local's in /tmp, and TensorFlow its files
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert not Path(summary["run"], "tmp").exists()
    assert_follows_the_readme_schema(summary)
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
    # what a person opens: in the run's own folder, with extensions
    assert summary["report"] == os.path.join(summary["run"], "report.html")
    assert Path(summary["report"]).read_text().startswith("<!doctype html>")
    evaluation = json.loads(Path(summary["run"], "evaluation.json").read_text())
    assert evaluation["verdict"]["blessed"] is True
    assert json.loads(Path(summary["run"], "summary.json").read_text()) == summary
    log = Path(summary["run"], "run.log").read_text()
    assert "'export-model'" in log and "Pipeline" in log and "SUCCESS" in log
    assert summary["cached"] == []
    assert summary["skipped"] == {"files": 0, "by_reason": {}, "line": ""}
    assert set(summary["artifacts"]) == {
        "split-data",
        "merge-features",
        "train-head",
        "fine-tune",
        "evaluate-model",
        "export-model",
    }  # fmt: skip - the parts' extraction runs in the loop; the listing makes no artifact
    for task, artifacts in summary["artifacts"].items():
        for name, path in artifacts.items():
            assert os.path.exists(path), f"{task}.{name}: {path}"  # paths, not names
    assert seconds < 300, f"the local DAG took {seconds:.0f} s"
    assert set(summary["seconds"]) >= {"split-data", "train-head", "fine-tune", "total"}
    steps = sum(value for task, value in summary["seconds"].items() if task != "total")
    assert steps <= summary["seconds"]["total"] + 0.5  # each step timed once, none overlap

    # The same run again, step cache on: only the source listing and the evaluation run,
    # the cached steps' numbers still come through, and the identical model is not
    # exported a second time.
    again, _ = run(tmp_path, export)
    assert_follows_the_readme_schema(again)
    assert again["run"] != summary["run"]  # each run its own folder
    cached = ["split-data", "extract-bottlenecks", "merge-features", "train-head", "fine-tune"]
    assert again["cached"] == cached
    assert again["head"]["val_accuracy"] == summary["head"]["val_accuracy"]
    assert again["fine_tuned"]["val_accuracy"] == summary["fine_tuned"]["val_accuracy"]
    assert again["artifacts"]["train-head"]["head"] == summary["artifacts"]["train-head"]["head"]
    assert again["blessed"] is False
    assert (
        "FAIL: the same weights as the production model: nothing new to export"
        in (again["reasons"])
    )
    assert Path(os.path.join(export, "latest")).read_text() == os.path.basename(summary["exported"])


BAD_INPUT = {
    "missing source": ([], "source {data}/nope does not exist: give a folder of class folders"),
    "one class": (["--min-images-per-class", "5"], "only one class ('only') in {data}/one"),
    "a small class": ([], "too few image files: 'few' has 9, below --min-images-per-class 10"),
    "an unknown backbone": (["--backbone", "resnet9000"],
                            "bad parameters: --backbone 'resnet9000': use one of densenet121"),
    "three bad values": (["--fine-tune-epochs", "-1", "--augmentation", "flip,blur=0.3",
                          "--image-size", "-5"],
                         "bad parameters: --image-size must be >= 0 (0 = the backbone's default), "
                         "got -5; --augmentation 'blur=0.3': use flip, rotation, zoom, translation,"
                         " contrast, erasing; --fine-tune-epochs must be >= 1, got -1"),
    "a missing preset folder": (["--backbones", "vgg16,keras_hub:./presets/nope"],
                                "--backbone keras_hub:./presets/nope: no preset folder "
                                "./presets/nope here (give a folder holding the preset's "
                                "config.json, a preset name such as dinov2_small, or a kaggle://,"
                                " hf:// or gs:// handle)"),
    # before: found at extraction, after the run folder, the source listing and the split
    "a missing weights file": (["--weights", "{data}/nope.weights.h5"],
                               "--weights {data}/nope.weights.h5: no such file (the path is read "
                               "where the run runs)"),
    "a missing .keras backbone": (["--backbones", "vgg16,{data}/nope.keras"],
                                  "--backbone {data}/nope.keras: no such file"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    data = tmp_path / "data"
    write_class_folders(str(data / "one"), {"only": 12})
    write_class_folders(str(data / "small"), {"few": 9, "many": 12})
    source = {"missing source": "nope", "one class": "one"}.get(case, "small")
    if case not in ("missing source", "a small class"):
        source = "one"  # the parameters are checked first
    flags, message = BAD_INPUT[case]
    flags = [flag.format(data=data) for flag in flags]
    start = time.monotonic()
    result = CliRunner().invoke(
        cli, ["run", str(data / source), "--pipeline-root", str(tmp_path / "runs"), *flags]
    )
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert result.stderr.startswith("error: " + message.format(data=data)), result.stderr
    assert not (tmp_path / "runs").exists()  # no run folder, no log
    assert time.monotonic() - start < 10


def test_demo_names_a_bad_out_before_fetching_weights(tmp_path):
    """Before: it tried the ImageNet download (warning offline), then called it --pipeline-root."""
    afile = tmp_path / "afile"
    afile.write_text("")
    said = {
        afile: "is a file: give a folder to write to",
        afile / "demo": f"lies below the file {afile}: give a folder path",
    }
    for out, why in said.items():
        result = CliRunner().invoke(cli, ["demo", "--out", str(out)])
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == f"error: --out {out} {why}\n"


def test_a_failing_step_keeps_its_run_folder_and_log(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"ok": 12, "bad": 6})
    for name, (data, _) in broken_files().items():  # 6 more files: 12 candidates, 6 valid
        (tmp_path / "data" / "bad" / name).write_bytes(data)
    args = ["run", str(tmp_path / "data"), "--weights", "none", "--pipeline-root"]
    quiet = CliRunner().invoke(cli, [*args, str(tmp_path / "a")])
    assert quiet.exit_code == 2
    [run] = [p for p in (tmp_path / "a").iterdir() if p.name != ".kfp_cache"]
    log = run / "run.log"
    assert quiet.stderr.splitlines()[-1] == (
        "error: step split-data failed: too few valid images: 'bad' has 6 of 12 files (2 "
        "corrupt, 1 zero_bytes, 1 too_small, 1 not_an_image, 1 unsupported_format skipped), "
        "below --min-images-per-class 10; e.g. bad/cut.jpg: JPEG is truncated or corrupt; add "
        f"images or lower the minimum; full log: {log}"
    )
    assert "Traceback" not in quiet.stderr and "FAILURE" not in quiet.stderr
    assert "error: too few valid images" in log.read_text()  # the step's own line, logged
    assert "Executing task" not in quiet.stderr
    loud = CliRunner().invoke(cli, ["-v", *args, str(tmp_path / "b")])
    assert "Executing task" in loud.stderr  # kfp.local's own lines, with -v only


def test_backbones_each_get_a_head_and_the_best_is_fine_tuned(tmp_path):
    """--backbones: a loop of extraction + head per backbone, one choice, one fine-tuning."""
    pytest.importorskip("keras_hub")
    from devtools.hub_presets import write_tiny_preset

    preset = write_tiny_preset(str(tmp_path / "preset"))
    write_class_folders(str(tmp_path / "data"), {"red": 20, "green": 20, "blue": 20})
    fast = [arg for arg in FAST if arg not in ("--backbone", "vgg16", "--image-size", "32")]
    result = CliRunner().invoke(cli, [
        "run", str(tmp_path / "data"), "--pipeline-root", str(tmp_path / "runs"), *fast,
        "--backbones", f"vgg16,keras_hub:{preset}", "--image-size", "42", "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert_follows_the_readme_schema(summary)
    candidates = summary["backbones"]
    assert [c["backbone"] for c in candidates] == ["vgg16", f"keras_hub:{preset}"]
    [chosen] = [c for c in candidates if c["chosen"]]
    assert chosen["val_accuracy"] == max(c["val_accuracy"] for c in candidates)
    assert summary["head"]["val_accuracy"] == chosen["val_accuracy"]
    features = summary["artifacts"]["choose-backbone"]["features"]
    manifest = json.loads(Path(features, "manifest.json").read_text())
    assert manifest["backbone"] == chosen["backbone"] and manifest["image_size"] == 42
    assert summary["fine_tuned"]["initial_val_accuracy"] == chosen["val_accuracy"]
    report = Path(summary["report"]).read_text()
    assert "Backbones (2 compared on cached features)" in report


def run_until_fine_tuning(tmp_path, *options: str, **popen) -> subprocess.Popen:
    """`kftransfer run` of many fine-tuning epochs in a process, once fine-tuning has begun.

    Its `$TMPDIR` is `tmp_path/system-tmp`, as /tmp would be.
    """
    write_class_folders(str(tmp_path / "data"), {"red": 20, "green": 20, "blue": 20})
    (tmp_path / "system-tmp").mkdir()
    main = "from kftransfer.pipelines.cli import main; main()"
    command = [
        sys.executable, "-c", main, "run", str(tmp_path / "data"),
        "--pipeline-root", str(tmp_path / "runs"), *FAST, "--fine-tune-epochs", "200", *options,
    ]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmp_path / "system-tmp")}
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, **popen)
    for line in process.stderr:  # the steps' progress lines, as they come
        if "fine-tune: validation accuracy before the first step" in line:
            break
    assert process.poll() is None, "the run ended before fine-tuning began"
    return process


def test_ctrl_c_says_what_stays_and_exits_130(tmp_path):
    # before: click's bare "Aborted!" and exit status 1, whatever had been done
    cache = tmp_path / "cache"
    process = run_until_fine_tuning(tmp_path, "--cache-uri", str(cache), **AS_A_SHELL_JOB)
    press_ctrl_c(process)
    stderr = process.communicate(timeout=120)[1]  # the rest
    [run] = (tmp_path / "runs").iterdir()
    assert process.returncode == 130
    # before: the fine-tuning's checkpoints and decoded pixels (139 MB here), TensorFlow's
    # and kfp.local's files stayed in /tmp, one set per stopped run
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert not (run / "tmp").exists()
    assert re.search(
        f"^interrupted: the run folder {re.escape(str(run))} stays, with its log "
        f"{re.escape(str(run / 'run.log'))}; a new run redoes its [4-9] finished steps "
        r"\(with --cache, a run keeps them for the next one\); the images its split read and "
        f"the features its extraction computed stay in {re.escape(str(cache))}, and a new run "
        r"reads and computes only the rest\n\Z",
        stderr, re.M,
    )  # fmt: skip


def running(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie, dead but not yet reaped, is not)."""
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        found.update(below := children.get(todo.pop(), []))
        todo += below
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads processes from /proc")
def test_a_run_killed_alone_says_what_stays_and_leaves_no_step_running(tmp_path):
    # `kill PID` (or `timeout`) reaches the run alone, not its steps (as Ctrl-C's SIGINT
    # does); before, its fine-tuning ran on, orphaned, to its last epoch, and later the run
    # died without a word, leaving the steps' temporary files behind
    process = run_until_fine_tuning(tmp_path)
    steps = descendants(process.pid)
    assert len(steps) >= 3  # the stderr filter, and the step's shell and Python
    process.terminate()  # SIGTERM, to the run's process only
    stderr = process.communicate(timeout=60)[1]
    [run] = (tmp_path / "runs").iterdir()
    assert process.returncode == 128 + signal.SIGTERM  # as a shell reports it
    assert re.search(
        f"^interrupted: the run folder {re.escape(str(run))} stays, with its log "
        f"{re.escape(str(run / 'run.log'))}; a new run redoes its [4-9] finished steps "
        r"\(with --cache, a run keeps them for the next one\)\n\Z",
        stderr, re.M,
    )  # fmt: skip
    assert not running(steps)  # the run waited for them
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert not (run / "tmp").exists()


def test_an_interrupted_run_with_the_step_cache_says_the_same_command_reuses_its_steps():
    finished = {"fingerprint-source": 1.0, "split-data": 2.0}
    assert interrupted_line("R", "R/run.log", finished, caching=True) == (
        "the run folder R stays, with its log R/run.log; the same command again reuses its 2 "
        "finished steps from the step cache, but for the source listing, which always runs"
    )
    assert interrupted_line("R", "R/run.log", {}, caching=False) == (
        "the run folder R stays, with its log R/run.log; no step had finished"
    )
