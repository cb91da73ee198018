"""submit and schedule against a fake KFP v2beta1 API on 127.0.0.1: the request bodies."""

import pytest
from click.testing import CliRunner

from kftransfer.pipelines.cli import cli
from tests.pipeline.fake_kfp import FakeKfp

API = "/apis/v2beta1"


@pytest.fixture
def kfp():
    with FakeKfp() as server:
        yield server


def invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def task_caching(spec: dict) -> set:
    """The caching switches of the cacheable container tasks.

    Condition and loop tasks have none; the source fingerprint, evaluation and export
    are never cached.
    """
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    components = spec["components"]
    return {
        task.get("cachingOptions", {}).get("enableCache", False)
        for name, task in tasks.items()
        if "executorLabel" in components[task["componentRef"]["name"]]
        and name not in ("fingerprint-source", "evaluate-model", "export-model")
    }


def test_submit_sends_the_spec_parameters_and_experiment(kfp):
    result = invoke(
        "submit", "gs://bucket/photos", "--host", kfp.host, "--experiment", "flowers",
        "--run-name", "nightly-1", "--pipeline-root", "gs://bucket/kfp", "--export", "gs://bucket/models",
        "--backbone", "efficientnet_b0", "--fine-tune-epochs", "7", "--no-cache",
        "--node-selector", "cloud.google.com/gke-accelerator=nvidia-tesla-t4",
        "--toleration", "nvidia.com/gpu:NoSchedule",
    )  # fmt: skip
    [experiment] = kfp.bodies("POST", f"{API}/experiments")
    assert experiment["display_name"] == "flowers"
    [run] = kfp.bodies("POST", f"{API}/runs")
    assert result.stdout.startswith("submitted run ") and "/#/runs/details/" in result.stdout
    assert run["display_name"] == "nightly-1"
    assert run["experiment_id"] == next(iter(kfp.experiments))
    config = run["runtime_config"]
    assert config["pipeline_root"] == "gs://bucket/kfp"
    parameters = config["parameters"]
    assert parameters["source"] == "gs://bucket/photos"
    assert parameters["export_uri"] == "gs://bucket/models"
    assert parameters["backbone"] == "efficientnet_b0" and parameters["fine_tune_epochs"] == 7
    assert parameters["fine_tune_learning_rate"] == 3e-5  # defaults are sent too: reproducible
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "kftransfer"
    assert task_caching(spec) == {False}  # --no-cache
    platform = run["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]
    assert set(platform["executors"]) == {"exec-extract-bottlenecks", "exec-fine-tune"}


def test_schedule_creates_a_recurring_run_then_lists_and_deletes_it(kfp):
    invoke(
        "schedule", "create", "gs://bucket/photos", "--host", kfp.host, "--cron", "0 30 2 * * 1",
        "--max-concurrency", "2", "--name", "weekly", "--cache-uri", "gs://bucket/cache",
    )  # fmt: skip
    [recurring] = kfp.bodies("POST", f"{API}/recurringruns")
    assert recurring["display_name"] == "weekly"
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * 1"}}
    assert recurring["max_concurrency"] == 2 and recurring["no_catchup"] is True
    assert recurring["mode"] == "ENABLE"
    assert recurring["experiment_id"] in kfp.experiments
    assert recurring["runtime_config"]["parameters"]["cache_uri"] == "gs://bucket/cache"
    assert task_caching(recurring["pipeline_spec"]) == {True}
    recurring_id = next(iter(kfp.recurring))
    listed = invoke("schedule", "list", "--host", kfp.host).stdout
    assert listed.split() == [recurring_id, "ENABLED", "0", "30", "2", "*", "*", "1", "weekly"]
    assert invoke("schedule", "delete", recurring_id, "--host", kfp.host).stdout == (
        f"deleted recurring run {recurring_id}\n"
    )
    assert kfp.recurring == {}


def test_five_field_cron_and_missing_source_are_clear_errors(kfp):
    result = CliRunner().invoke(
        cli, ["schedule", "gs://b/p", "--host", kfp.host, "--cron", "0 3 * * *"]
    )
    assert result.exit_code == 2
    assert "KFP cron has 6 fields, seconds first, e.g. '0 0 3 * * *'" in result.stderr
    result = CliRunner().invoke(cli, ["schedule", "create", "--host", kfp.host])
    assert result.exit_code == 2 and "Missing argument 'SOURCE'" in result.stderr


def test_the_older_schedule_forms_still_work_with_a_deprecation_line(kfp):
    created = invoke("schedule", "gs://bucket/photos", "--host", kfp.host)
    assert "use `kftransfer schedule create SOURCE`" in created.stderr
    [recurring_id] = kfp.recurring
    listed = invoke("schedule", "--list", "--host", kfp.host)
    assert listed.stdout.split()[0] == recurring_id and "schedule list" in listed.stderr
    deleted = invoke("schedule", "--delete", recurring_id, "--host", kfp.host)
    assert deleted.stdout == f"deleted recurring run {recurring_id}\n" and kfp.recurring == {}


def test_unreachable_server_is_one_line():
    from devtools.emulator import free_port

    host = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["submit", "gs://b/p", "--host", host])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot reach the KFP API at {host}:")
    assert result.stderr.count("\n") == 1
