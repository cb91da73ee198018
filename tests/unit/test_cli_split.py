"""`kftransfer split`: the summary, the files, and one-line errors with exit status 2."""

import os
import re
import subprocess

import pytest
from click.testing import CliRunner

from devtools.imagegen import broken_files, write_class_folders
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.summary import format_summary, split_summary


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_split_prints_counts_and_skips(tmp_path):
    root = str(tmp_path / "data")
    write_class_folders(root, {"cat": 12, "dog": 12, "owl": 12})
    data, _ = broken_files()["cut.png"]
    (tmp_path / "data" / "owl" / "cut.png").write_bytes(data)
    out = str(tmp_path / "split")
    result = run("split", root, "--out", out, "--val-fraction", "0.25", "--test-fraction", "0.25")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["class", "train", "validation", "test"]
    assert [line.split()[0] for line in lines[1:5]] == ["cat", "dog", "owl", "total"]
    assert sum(int(n) for n in lines[4].split()[1:]) == 36
    assert lines[5] == (
        "skipped 1 files (1 corrupt; e.g. owl/cut.png: PNG is truncated or corrupt): see stats.json"
    )
    assert sorted(os.listdir(out)) == [
        "labels.json", "stats.json", "test.csv", "train.csv", "validation.csv"
    ]  # fmt: skip


def test_bad_source_is_one_line_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "split"
    result = CliRunner().invoke(cli, ["split", str(tmp_path / "nowhere"), "--out", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: source {tmp_path / 'nowhere'} does not exist")
    assert not out.exists()


def test_bad_option_value_is_exit_2(tmp_path):
    write_class_folders(str(tmp_path / "d"), {"a": 12, "b": 12})
    result = CliRunner().invoke(
        cli, ["split", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--val-fraction", "1.5"]
    )
    assert result.exit_code == 2
    assert result.stderr == "error: --val-fraction must be in [0, 1), got 1.5\n"
    assert not (tmp_path / "o").exists()


def test_help_has_examples():
    result = run("split", "--help")
    assert "kftransfer split ~/photos --out ~/photos-split" in result.output
    assert "--min-images-per-class" in result.output


def test_run_help_groups_options_by_step_and_prints_examples_verbatim():
    text = run("run", "--help").output
    headings = [line[:-1] for line in text.splitlines() if line.endswith(":") and line[0] != " "]
    assert headings == [
        "Split", "Bottleneck extraction", "Head training", "Fine-tuning",
        "Evaluation and blessing", "Locations", "Local run", "Options", "Examples",
    ]  # fmt: skip
    assert "\\b" not in text
    examples = text.split("Examples:\n")[1].splitlines()
    assert examples[1] == (
        "  kftransfer run gs://bucket/photos --cache-uri gs://bucket/cache "
        "--export gs://bucket/models"
    )
    section = text.split("Fine-tuning:\n")[1].split("\n\n")[0]
    assert "--fine-tune-epochs" in section and "--head-epochs" not in section


def test_a_runs_summary_says_what_validation_left_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_class_folders("data", {"cat": 12, "dog": 12, "owl": 12})
    data, _ = broken_files()["cut.png"]
    (tmp_path / "data" / "dog" / "cut.png").write_bytes(data)
    fractions = ["--val-fraction", "0.25", "--test-fraction", "0.25"]
    assert run("split", "data", "--out", "splits", *fractions).exit_code == 0
    skipped = split_summary(str(tmp_path / "splits"))["skipped"]
    assert skipped == {
        "files": 1,
        "by_reason": {"corrupt": 1},
        "line": "skipped 1 files (1 corrupt; e.g. dog/cut.png: PNG is truncated or corrupt): "
        "see splits/stats.json",
    }
    summary = {"head": {"val_accuracy": 0.9, "test_accuracy": 0.9}, "fine_tuned": {
        "val_accuracy": 0.9, "test_accuracy": 0.9}, "blessed": False, "reasons": [],
        "report": "", "exported": None, "skipped": skipped}  # fmt: skip
    assert f"data: {skipped['line']}" in format_summary(summary).splitlines()
    assert split_summary(None)["skipped"] == {"files": 0, "by_reason": {}, "line": ""}


def test_a_runs_summary_repeats_the_splits_warnings(tmp_path):
    write_class_folders(str(tmp_path / "data"), {"cat": 12, "Cat": 12, "owl": 12})
    fractions = ["--val-fraction", "0.25", "--test-fraction", "0.25"]
    assert (
        run("split", str(tmp_path / "data"), "--out", str(tmp_path / "s"), *fractions).exit_code
        == 0
    )
    warned = split_summary(str(tmp_path / "s"))["warnings"]
    assert warned == [
        "classes 'Cat', 'cat' differ only in case, width, spaces, '_' or '-': if they are one "
        "class, give them one name"
    ]
    summary = {"head": {"val_accuracy": 0.9, "test_accuracy": 0.9}, "fine_tuned": {
        "val_accuracy": 0.9, "test_accuracy": 0.9}, "blessed": False, "reasons": [],
        "report": "", "exported": None, "warnings": warned}  # fmt: skip
    assert f"data: warning: {warned[0]}" in format_summary(summary).splitlines()
    many = format_summary({**summary, "warnings": [f"w{i}" for i in range(5)]}).splitlines()
    assert [line for line in many if line.startswith("data:")] == [
        "data: warning: w0", "data: warning: w1", "data: warning: w2",
        "data: 2 more warnings: see stats.json",
    ]  # fmt: skip
    assert split_summary(None)["warnings"] == []


def test_a_folder_the_system_refuses_is_one_line_not_a_traceback(tmp_path):
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("needs Linux sysfs, where no file can be made")
    write_class_folders(str(tmp_path / "d"), {"a": 20, "b": 20})
    result = CliRunner().invoke(cli, ["split", str(tmp_path / "d"), "--out", "/sys/kft-split"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert re.fullmatch(
        r"error: Operation not permitted: /sys/\.kft-split\.tmp-\w+: give a location you may "
        r"write to, or fix its permissions",
        result.stderr.splitlines()[-1],
    )


def test_a_read_only_out_is_refused_before_any_image_is_read(tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(read_only)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip("needs mount (root) for a read-only file system")
    try:
        result = CliRunner().invoke(
            cli, ["split", str(tmp_path / "nowhere"), "--out", str(read_only / "split")]
        )
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {read_only / 'split'}: {read_only} is read-only here: give a folder you may "
        "write to\n"
    )


def test_names_with_control_characters_print_one_line_each(tmp_path):
    # before: a class folder named with a newline split its row of the table in two, and
    # the run's summary its warning line; an escape sequence reached the terminal as it was
    write_class_folders(str(tmp_path / "data"), {"two\nlines": 12, "\x1b[2Jclear": 12})
    fractions = ["--val-fraction", "0.25", "--test-fraction", "0.25"]
    result = run("split", str(tmp_path / "data"), "--out", str(tmp_path / "s"), *fractions)
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert [row.split()[0] for row in rows[:4]] == [
        "class",
        "\\x1b[2Jclear",
        "two\\nlines",
        "total",
    ]
    summary = {"head": {"val_accuracy": 0.9, "test_accuracy": 0.9}, "fine_tuned": {
        "val_accuracy": 0.9, "test_accuracy": 0.9}, "blessed": False, "reasons": [],
        "report": "", "exported": None, "warnings": ["class 'two\nlines' is odd"]}  # fmt: skip
    assert "data: warning: class 'two\\nlines' is odd" in format_summary(summary).splitlines()
