"""The README's promises that can be checked offline, against the code that keeps them."""

import os

import yaml
from click.testing import CliRunner

from kftransfer.components.component import DEFAULT_IMAGE, GPU_SUFFIX
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.steps import STEPS
from kftransfer.pipelines.summary import format_summary
from tests.readme import demo_output, section


def test_the_demo_summary_prints_as_the_readme_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = os.path.join("kftransfer-demo", "runs", "20261126-042149-58ceb9")
    summary = {
        "head": {"val_accuracy": 0.7528, "test_accuracy": 0.8276},
        "fine_tuned": {"val_accuracy": 0.8427, "test_accuracy": 0.8851},
        "trust": {"temperature": 0.75, "ece_before": 0.132, "ece_after": 0.084,
                  "min_confidence": 0.0, "label_issues": 62,
                  "label_issues_csv": os.path.abspath(os.path.join(run, "label_issues.csv")),
                  "leaked_test_images": 0},
        "blessed": True,
        "reasons": ["PASS: test accuracy 0.8851 (77/87) beats always 'coat' 0.1379 (one-sided "
                    "binomial p=5.3e-55 < 0.01)",
                    "PASS: not significantly worse than the head-only model on the same 87 "
                    "images (7 fixed, 2 broken; McNemar p=0.18)",
                    "PASS: test accuracy 0.8851 >= the threshold 0.0000",
                    "PASS: no production model at kftransfer-demo/models yet"],
        "report": os.path.abspath(os.path.join(run, "report.html")),  # printed relative
        "exported": "kftransfer-demo/models/20261126042448386",
    }  # fmt: skip
    readme = [line for line in demo_output() if not line.startswith("try:")]
    assert format_summary(summary).splitlines() == readme


def test_cpu_steps_pull_the_cpu_image_and_gpu_steps_the_gpu_one(tmp_path):
    path = tmp_path / "p.yaml"
    assert CliRunner().invoke(cli, ["compile", "-o", str(path)]).exit_code == 0
    spec = next(yaml.safe_load_all(path.read_text()))
    images = {
        name: e["container"]["image"] for name, e in spec["deploymentSpec"]["executors"].items()
    }
    for step in STEPS.values():
        if f"exec-{step.task}" in images:
            expected = DEFAULT_IMAGE + (GPU_SUFFIX if step.gpu else "")
            assert images[f"exec-{step.task}"] == expected, step.component
    assert "`--gpu-count N` | 1 |" in section("GPU and node settings")
