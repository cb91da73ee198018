"""`run --exclude-label-issues`: planted mislabelled images are found, left out, retrained."""

import json
from pathlib import Path

from click.testing import CliRunner

from devtools.imagegen import class_image, encode, write_class_folders
from kftransfer.components.core.layout import read_rows
from kftransfer.pipelines.cli import cli
from tests.pipeline.test_local_run import FAST


def test_planted_label_errors_are_listed_excluded_and_predict_can_abstain(tmp_path):
    data = tmp_path / "data"
    write_class_folders(str(data), {"blue": 30, "green": 30, "red": 30})
    planted = []
    for sample in range(3):  # red images filed as green: class 2 of the sorted names
        path = data / "green" / f"wrong_{sample}.png"
        path.write_bytes(encode(class_image(2, 500 + sample)))
        planted.append(str(path))
    mine = str(data / "blue" / "img_0000.png")  # the user's own exclusion, kept by both runs
    (tmp_path / "mine.txt").write_text(mine + "\n")
    result = CliRunner().invoke(cli, [
        "run", str(data), "--pipeline-root", str(tmp_path / "runs"), *FAST,
        "--export", str(tmp_path / "models"), "--exclude", str(tmp_path / "mine.txt"),
        "--exclude-label-issues", "auto", "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    excluded = summary["excluded_label_issues"]
    listed = Path(excluded["list"]).read_text().split()
    assert listed[-1] == mine and excluded["count"] == len(listed) - 1 > 0
    listed = listed[:-1]
    first = json.loads(Path(excluded["first_run"], "summary.json").read_text())
    audited = {row.uri for split in ("train", "validation")
               for row in read_rows(first["artifacts"]["split-data"]["splits"], split)}  # fmt: skip
    assert audited & set(planted)  # plants in train/validation (test images are not audited)
    assert {p for p in planted if p in audited} <= set(listed)  # every audited plant found
    assert len(set(listed) - set(planted)) <= 2  # and hardly anything else
    second_split = summary["artifacts"]["split-data"]["splits"]
    kept = {row.uri for split in ("train", "validation", "test")
            for row in read_rows(second_split, split)}  # fmt: skip
    assert not kept & {*listed, mine}
    assert summary["trust"]["label_issues"] < first["trust"]["label_issues"]

    predicted = CliRunner().invoke(cli, [
        "predict", str(tmp_path / "models"), str(data / "red"), "--min-confidence", "1", "--json",
    ], catch_exceptions=False)  # fmt: skip
    # the shown probability is cut, not rounded: 0.99999994 is 0.999999, below 1, as answered
    for line in predicted.stdout.splitlines():
        record = json.loads(line)
        top = record["predictions"][0]
        assert record["label"] == ("unknown" if top["probability"] < 1 else top["label"])
