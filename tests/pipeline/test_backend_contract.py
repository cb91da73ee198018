"""The backend rules catch what they say (each check fails on a spec that breaks it)."""

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl

from kftransfer.components.core.publish import publish, publish_confusion
from kftransfer.pipelines import backend_contract as contract
from kftransfer.pipelines import backend_rules as rules
from kftransfer.pipelines.settings import ClusterSettings
from kftransfer.pipelines.transfer_learning import compile_pipeline

DOC = Path(__file__).resolve().parents[2] / "docs" / "kfp-backend.md"


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    path = str(tmp_path_factory.mktemp("spec") / "p.yaml")
    return compile_pipeline(path, ClusterSettings(extract_parts=2))


def task(spec: dict, key: str) -> dict:
    for component in [spec["root"], *spec["components"].values()]:
        found = component.get("dag", {}).get("tasks", {}).get(key)
        if found:
            return found
    raise KeyError(key)


def test_the_compiled_pipeline_keeps_every_rule(spec):
    assert contract.spec_problems(spec) == []


@pytest.mark.parametrize(
    "break_it,problem",
    [
        (lambda s: task(s, "export-model").update(cachingOptions={"enableCache": True}),
         "[uncached-steps] task export-model"),
        (lambda s: task(s, "fine-tune")["retryPolicy"].update(backoffFactor=1.5),
         "[retry-factor-integer] task fine-tune backoffFactor 1.5"),
        (lambda s: task(s, "train-head")["retryPolicy"].update(backoffMaxDuration="300s"),
         "[retry-window] task train-head: the backoffs alone (420 s) exceed"),
        (lambda s: task(s, "for-loop-2").update(retryPolicy={"maxRetryCount": 1}),
         "[retry-on-containers] task for-loop-2"),
        (lambda s: task(s, "for-loop-2")["taskInfo"].update(name="extract-parts"),
         "[unnamed-loop] loop for-loop-2 is named 'extract-parts'"),
        (lambda s: s["root"]["inputDefinitions"]["parameters"]["export_uri"].pop("defaultValue"),
         "[root-defaults] parameter export_uri"),
    ],
)  # fmt: skip
def test_each_rule_fails_a_spec_that_breaks_it(spec, break_it, problem):
    broken = copy.deepcopy(spec)
    break_it(broken)
    assert any(p.startswith(problem) for p in contract.spec_problems(broken)), problem


def test_a_request_with_another_root_breaks_the_pipeline_root_rule(spec):
    body = {"pipeline_spec": spec, "runtime_config": {"pipeline_root": "gs://b/kfp"}}
    assert contract.request_problems(body, "gs://b/kfp") == []
    [problem] = contract.request_problems(body, "")
    assert problem.startswith("[pipeline-root] the request asks for root 'gs://b/kfp'")


@pytest.mark.parametrize(
    "display_name,prefix",
    [
        ("kftransfer-retraining", "kftransfer-retraining"),
        ("Nightly retrain (EU) - café", "nightlyretraineu-caf"),
        ("nightly-retraining-of-the-fashion-model", "nightly-retraining-of-the"),  # 25
        ("Ежедневно", "job-"),  # nothing left
        ("Ежедневно-retrain", "-retrain"),  # refused by Kubernetes
        ("é-retrain", "-retrain"),
    ],
)
def test_the_scheduled_workflow_is_named_as_the_backend_names_it(display_name, prefix):
    # template.go:323-339 at 2.17.0: lower, drop [^a-z0-9-], "job-" when empty, first 25
    assert contract.scheduled_workflow_prefix(display_name) == prefix


def test_a_recurring_run_kubernetes_or_the_api_would_refuse_breaks_its_rules(spec):
    body = {"pipeline_spec": spec, "trigger": {"cron_schedule": {"cron": "0 0 3 * * *"}}}
    assert contract.request_problems(
        {**body, "display_name": "é-x", "max_concurrency": 11}, ""
    ) == [
        "[schedule-name] 'é-x' names the ScheduledWorkflow starting with '-'",
        "[max-concurrency] max_concurrency 11 is not 1-10",
    ]
    assert (
        contract.request_problems({**body, "display_name": "é x", "max_concurrency": 10}, "") == []
    )


def test_executor_outputs_with_a_moved_uri_or_a_none_break_their_rules(tmp_path):
    folder = tmp_path / "run" / "export-model"
    folder.mkdir(parents=True)
    moved = {"uri": "gs://other-bucket/models/1", "metadata": {"version": None}}
    output = {"artifacts": {"exported": {"artifacts": [moved]}}}
    (folder / "executor_output.json").write_text(json.dumps(output))
    (folder / "exported").write_text("{}")
    problems = contract.executor_output_problems(str(tmp_path / "run"))
    assert problems == [
        "[artifact-uri] export-model.exported was moved to gs://other-bucket/models/1",
        "[metadata-values] exported metadata ['version'] is None",
    ]


def test_an_output_artifact_left_unwritten_breaks_the_outputs_written_rule(tmp_path):
    folder = tmp_path / "run" / "evaluate-model"
    folder.mkdir(parents=True)
    written, missing = (
        {"uri": str(folder / name), "metadata": {}} for name in ("report", "tflite_model")
    )
    output = {"artifacts": {"report": {"artifacts": [written]},
                            "tflite_model": {"artifacts": [missing]}}}  # fmt: skip
    (folder / "executor_output.json").write_text(json.dumps(output))
    (folder / "report").write_text("<!doctype html>")
    assert contract.executor_output_problems(str(tmp_path / "run")) == [
        "[outputs-written] evaluate-model.tflite_model was not written"
    ]


def _confusion_output(tmp_path, name: str, labels: list[str], matrix: list[list[int]]):
    """An evaluate-model folder whose `confusion` holds `matrix` as the step publishes it."""
    folder = tmp_path / name / "evaluate-model"
    folder.mkdir(parents=True)
    confusion = dsl.ClassificationMetrics(name="confusion", uri=str(folder / "confusion"))
    if name == "whole":  # as the step logged it before: every class, for the KFP UI
        confusion.log_confusion_matrix(labels, matrix)
        (folder / "confusion").write_text("{}")
    else:
        publish_confusion(confusion, labels, matrix)
    artifact = {"uri": confusion.uri, "metadata": confusion.metadata}
    output = {"artifacts": {"confusion": {"artifacts": [artifact]}}}
    (folder / "executor_output.json").write_text(json.dumps(output))
    return confusion


def test_a_confusion_matrix_of_1100_classes_overflows_mlmd_and_the_published_one_fits(tmp_path):
    labels = [f"class_{i:04d}" for i in range(1100)]
    matrix = np.eye(1100, dtype=int) * 7 + 1
    matrix[12, 900] = 30  # the most confused pair
    _confusion_output(tmp_path, "whole", labels, matrix.tolist())
    [problem] = contract.executor_output_problems(str(tmp_path / "whole"))
    assert re.fullmatch(
        r"\[metadata-size\] confusion metadata 'confusionMatrix' is 17,\d{3},\d{3} bytes in "
        r"MLMD, over MySQL's 16,777,215",
        problem,
    ), problem

    published = _confusion_output(tmp_path, "published", labels, matrix.tolist())
    assert contract.executor_output_problems(str(tmp_path / "published")) == []
    shown = published.metadata["confusionMatrix"]
    names = [spec["displayName"] for spec in shown["annotationSpecs"]]
    assert len(names) == 40 and names[-1] == "(other 1061 classes)"
    assert names.index("class_0012") < names.index("class_0900")
    assert published.metadata["classes_shown"].startswith("the 39 most confused of 1100")
    saved = json.loads(Path(published.path).read_text())
    assert saved["labels"] == labels and saved["matrix"] == matrix.tolist()


def test_a_nan_in_step_outputs_breaks_the_metadata_values_rule_and_publish_keeps_it_out(
    tmp_path,
):
    folder = tmp_path / "published" / "train-head"
    folder.mkdir(parents=True)
    metrics = dsl.Metrics(name="metrics", uri=str(folder / "metrics"))
    head = dsl.Model(name="head", uri=str(folder / "head"))
    summary = {"val_accuracy": 0.5, "val_loss": float("nan"), "sweep": [{"loss": float("inf")}]}
    publish(metrics, summary)
    publish(head, summary, write_file=False)
    (folder / "head").write_text("{}")
    assert metrics.metadata == {"val_accuracy": 0.5}
    assert head.metadata["val_loss"] == "NaN" and head.metadata["sweep"] == [{"loss": "Infinity"}]
    strict = json.loads((folder / "metrics").read_text(), parse_constant=pytest.fail)
    assert strict["val_loss"] == "NaN"  # before: a bare NaN, which strict parsers refuse

    def write(run: str, artifacts: dict) -> list[str]:
        (tmp_path / run / "train-head").mkdir(parents=True, exist_ok=True)
        for name in artifacts:
            (tmp_path / run / "train-head" / name).write_text("{}")
        output = {
            "artifacts": {
                name: {"artifacts": [{"uri": str(tmp_path / run / "train-head" / name),
                                      "metadata": metadata}]}
                for name, metadata in artifacts.items()
            }
        }  # fmt: skip
        # json.dumps as the SDK's executor writes it: a NaN becomes a bare NaN
        (tmp_path / run / "train-head" / "executor_output.json").write_text(json.dumps(output))
        return contract.executor_output_problems(str(tmp_path / run))

    assert write("published", {"metrics": metrics.metadata, "head": head.metadata}) == []
    assert write("raw", {"head": summary}) == [
        "[metadata-values] head metadata ['val_loss', 'sweep'] holds NaN or infinity"
    ]


def test_required_backend_and_versions(spec, tmp_path):
    assert contract.required_backend(spec) == "2.14.0"  # Collected artifacts
    single = compile_pipeline(str(tmp_path / "p.yaml"))
    assert contract.required_backend(single) == rules.BASE_FLOOR == "2.5.0"
    assert contract.parse_version("2.17.0") == (2, 17, 0)
    assert contract.parse_version("v2.14.1-rc.2") == (2, 14, 1)
    assert contract.parse_version("unknown") is None


def test_every_rule_is_documented_with_its_source_and_version():
    text = DOC.read_text()
    for rule in rules.RULES.values():
        row = re.search(rf"^\| `{re.escape(rule.id)}` \|.*$", text, re.MULTILINE)
        assert row, f"{rule.id} is not in docs/kfp-backend.md"
        cited = re.findall(r"[\w/.]+\.(?:go|py|ts|proto):[\d-]+", rule.source)
        assert cited and all(place in row.group(0) for place in cited), rule.id
        assert rule.since in row.group(0), rule.id
