"""The run that once shipped a chance-level model: random weights on three colour classes."""

import json
import os

from click.testing import CliRunner

from devtools.imagegen import write_class_folders
from kftransfer.pipelines.cli import cli


def test_a_random_weights_run_is_not_blessed_and_exports_nothing(tmp_path):
    """MobileNetV2 with random weights learns nothing here (every image one class)."""
    write_class_folders(str(tmp_path / "data"), {"red": 46, "green": 46, "blue": 46})
    result = CliRunner().invoke(cli, [
        "run", str(tmp_path / "data"), "--pipeline-root", str(tmp_path / "runs"),
        "--weights", "none", "--image-size", "96", "--fine-tune-epochs", "2",
        "--export", str(tmp_path / "models"), "--json",
    ], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fine_tuned"]["test_accuracy"] < 0.4  # chance on three classes
    assert summary["blessed"] is False and summary["exported"] is None
    assert summary["reasons"][0].startswith("FAIL: test accuracy")
    assert "does not significantly beat always" in summary["reasons"][0]
    assert all(r.startswith("PASS") for r in summary["reasons"][1:])  # the gate alone says no
    assert not os.path.exists(tmp_path / "models")
