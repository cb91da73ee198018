"""submit and schedule against a fake KFP v2beta1 API on 127.0.0.1: the request bodies."""

import re
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kftransfer.pipelines.backend_contract import request_problems
from kftransfer.pipelines.cli import cli
from kftransfer.pipelines.steps import find_step
from tests.pipeline.fake_kfp import FakeKfp
from tests.shell_job import AS_A_SHELL_JOB, press_ctrl_c

API = "/apis/v2beta1"
NEVER_CACHED = {"fingerprint-source", "evaluate-model", "export-model"}


@pytest.fixture
def kfp():
    with FakeKfp() as server:
        yield server


def invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def spec_of(body: dict) -> dict:
    """The pipeline spec of a request body (wrapped with the platform spec when it has one)."""
    sent = body["pipeline_spec"]
    return sent.get("pipeline_spec", sent)


def caching_by_task(spec: dict) -> dict[str, bool]:
    """Every container task of every DAG (root, conditions, loops) -> its caching switch."""
    components, found = spec["components"], {}

    def visit(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            component = components[task["componentRef"]["name"]]
            if "executorLabel" in component:
                found[name] = task.get("cachingOptions", {}).get("enableCache", False)
            visit(component.get("dag", {}))

    visit(spec["root"]["dag"])
    return found


def assert_caching(spec: dict, cache: bool) -> None:
    caching = caching_by_task(spec)
    assert NEVER_CACHED <= set(caching)
    for task, enabled in caching.items():
        assert enabled == (cache and task not in NEVER_CACHED), task
        assert find_step(task).cached == (task not in NEVER_CACHED)


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
    assert parameters["fine_tune_learning_rate"] == 5e-5  # defaults are sent too: reproducible
    spec = run["pipeline_spec"]["pipeline_spec"]
    assert spec["pipelineInfo"]["name"] == "kftransfer"
    assert_caching(spec, cache=False)  # --no-cache
    assert request_problems(run, "gs://bucket/kfp") == []
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
    # every scheduled run lists the source and evaluates anew: never served from the cache
    assert_caching(spec_of(recurring), cache=True)
    assert request_problems(recurring, "") == []
    recurring_id = next(iter(kfp.recurring))
    listed = invoke("schedule", "list", "--host", kfp.host).stdout
    assert listed.split() == [recurring_id, "ENABLED", "0", "30", "2", "*", "*", "1", "weekly"]
    assert invoke("schedule", "delete", recurring_id, "--host", kfp.host).stdout == (
        f"deleted recurring run {recurring_id}\n"
    )
    assert kfp.recurring == {}
    # rule schedule-delete-orphans: a run of it under way is left running
    [delete] = [r for r in kfp.requests if r["method"] == "DELETE"]
    assert delete["query"] == "propagation_policy=ORPHAN"


def test_a_second_schedule_of_one_name_or_export_is_refused_and_replace_swaps_it(kfp):
    # The backend keeps any number of recurring runs of one name (rule one-schedule); two
    # exporting into one destination would race to publish there.
    args = ["schedule", "create", "gs://b/photos", "--host", kfp.host]
    invoke(*args, "--name", "nightly", "--export", "gs://b/models")
    [first] = kfp.recurring
    for extra, what in (
        (["--name", "nightly", "--export", "gs://b/other"], "has the name 'nightly'"),
        (["--name", "second", "--export", "gs://b/models"], "exports to gs://b/models"),
        (["--name", "second", "--export", "gs://b/models/"], "exports to gs://b/models/"),
    ):
        refused = CliRunner().invoke(cli, [*args, *extra])
        assert refused.exit_code == 2 and refused.stdout == ""
        assert refused.stderr == (
            f"error: recurring run {first} ('nightly', ENABLED, cron '0 0 3 * * *') already "
            f"{what}: give --replace to replace it with this one, or delete it first "
            f"(kftransfer schedule delete {first})\n"
        )
    assert list(kfp.recurring) == [first] and len(kfp.bodies("POST", f"{API}/recurringruns")) == 1

    swapped = invoke(*args, "--name", "nightly", "--export", "gs://b/models", "--cron",
                     "0 0 4 * * *", "--replace")  # fmt: skip
    [second] = kfp.recurring
    assert swapped.stdout == (
        f"scheduled recurring run {second} (cron '0 0 4 * * *', in the cluster's cron time "
        "zone: UTC unless its KFP install sets another)\n"
        f"deleted recurring run {first}, which it replaces\n"
    )
    assert kfp.recurring[second]["trigger"] == {"cron_schedule": {"cron": "0 0 4 * * *"}}
    # before: the old schedule's Workflows were deleted with it, stopping tonight's run
    [delete] = [r for r in kfp.requests if r["method"] == "DELETE"]
    assert delete["path"] == f"{API}/recurringruns/{first}"
    assert delete["query"] == "propagation_policy=ORPHAN"
    invoke(*args, "--name", "weekly", "--export", "gs://b/models-weekly")
    assert len(kfp.recurring) == 2


def test_a_replacement_whose_old_schedule_cannot_be_deleted_says_both_run(kfp):
    # before: "refused the deletion of a replaced recurring run", as if nothing was made
    args = ["schedule", "create", "gs://b/photos", "--host", kfp.host, "--name", "nightly"]
    invoke(*args)
    [old] = kfp.recurring
    kfp.refuse_deletes = True
    result = CliRunner().invoke(cli, [*args, "--replace"])
    [new] = set(kfp.recurring) - {old}
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("error:") == 1  # after kfp's "Experiment details: URL"
    assert result.stderr.endswith(
        f"error: the KFP API at {kfp.host} refused the deletion of recurring run {old}: "
        "HTTP 403 User 'me@example.com' is not authorized with reason: (delete); its "
        f"replacement, recurring run {new} ('nightly'), was created, so both now run: delete "
        f"the old one when you may (kftransfer schedule delete {old})\n"
    )


def test_a_schedule_named_in_the_ui_with_control_characters_is_listed_on_one_line(kfp):
    # `schedule create` refuses such a name, but the KFP UI and the SDK take any.
    kfp.recurring["id-1"] = {
        "recurring_run_id": "id-1", "display_name": "night\n\x1b[2Jly", "status": "ENABLED",
        "trigger": {"cron_schedule": {"cron": "0 0 1 * * *"}},
        "runtime_config": {"parameters": {"export_uri": "gs://b/m\rodels"}},
    }  # fmt: skip
    listed = invoke("schedule", "list", "--host", kfp.host).stdout
    assert listed == "id-1  ENABLED  0 0 1 * * *  night\\n\\x1b[2Jly  -> gs://b/m\\rodels\n"


def test_schedules_are_read_past_the_apis_first_page(kfp):
    for i in range(230):  # the API answers 100 at most a page
        kfp.recurring[f"id-{i:03d}"] = {
            "recurring_run_id": f"id-{i:03d}", "display_name": f"team-{i}", "status": "ENABLED",
            "trigger": {"cron_schedule": {"cron": "0 0 1 * * *"}},
            "runtime_config": {"parameters": {"export_uri": f"gs://b/models-{i}"}},
        }  # fmt: skip
    listed = invoke("schedule", "list", "--host", kfp.host).stdout.splitlines()
    assert len(listed) == 230
    assert listed[229] == "id-229  ENABLED  0 0 1 * * *  team-229  -> gs://b/models-229"
    refused = CliRunner().invoke(
        cli, ["schedule", "create", "gs://b/p", "--host", kfp.host, "--export", "gs://b/models-229"]
    )
    assert refused.exit_code == 2 and "recurring run id-229 ('team-229'," in refused.stderr
    pages = [r["query"] for r in kfp.requests if r["path"] == f"{API}/recurringruns"]
    assert len(pages) == 6 and "page_token=200" in pages[2]  # 3 pages per listing


def test_five_field_cron_and_missing_source_are_clear_errors(kfp):
    result = CliRunner().invoke(
        cli, ["schedule", "gs://b/p", "--host", kfp.host, "--cron", "0 3 * * *"]
    )
    assert result.exit_code == 2
    assert "KFP cron has 6 fields, seconds first, e.g. '0 0 3 * * *'" in result.stderr
    result = CliRunner().invoke(cli, ["schedule", "create", "--host", kfp.host])
    assert result.exit_code == 2 and "Missing argument 'SOURCE'" in result.stderr


def test_a_schedule_kubernetes_or_the_api_would_refuse_is_refused_before_any_request(kfp):
    # rule schedule-name: KFP names the ScheduledWorkflow after the name's a-z, 0-9 and '-'
    args = ["schedule", "create", "gs://b/photos", "--host", kfp.host]
    refused = CliRunner().invoke(cli, [*args, "--name", "Ежедневно-retrain"])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == (
        "error: recurring run name 'Ежедневно-retrain' would be refused by the cluster: KFP "
        "names its Kubernetes object after the name's a-z, 0-9 and '-' ('-retrain'), which "
        "must start with a letter or digit; start --name with one, e.g. "
        "'kftransfer Ежедневно-retrain'\n"
    )
    refused = CliRunner().invoke(cli, [*args, "--max-concurrency", "11"])  # rule max-concurrency
    assert refused.exit_code == 2
    assert "Invalid value for '--max-concurrency': 11 is not in the range 1<=x<=10" in (
        refused.stderr
    )
    assert kfp.requests == []
    invoke(*args, "--name", "Ежедневно retrain", "--max-concurrency", "10")
    [recurring] = kfp.bodies("POST", f"{API}/recurringruns")
    assert recurring["display_name"] == "Ежедневно retrain"  # the backend names it job-...
    assert request_problems(recurring, "") == []


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
    for command in (["submit", "gs://b/p"], ["schedule", "list", "--namespace", "alice"]):
        result = CliRunner().invoke(cli, [*command, "--host", host])
        assert result.exit_code == 2
        assert result.stderr == (
            f"error: cannot reach the KFP API at {host}: Failed to establish a new "
            "connection: [Errno 111] Connection refused\n"
        )  # before: "no answer within 30 s" (urllib3's NewConnectionError is a timeout)


def test_ctrl_c_while_the_server_does_not_answer_is_one_line_and_exit_130():
    # before: click's bare "Aborted!" and exit status 1
    with socket.create_server(("127.0.0.1", 0)) as server:  # takes requests, never answers
        host = f"http://127.0.0.1:{server.getsockname()[1]}"
        main = "from kftransfer.pipelines.cli import main; main()"
        process = subprocess.Popen(
            [sys.executable, "-c", main, "schedule", "list", "--host", host, "--token", "t"],
            stderr=subprocess.PIPE, text=True, **AS_A_SHELL_JOB,
        )  # fmt: skip
        server.settimeout(60)
        connection, _ = server.accept()  # the command is waiting for the answer
        press_ctrl_c(process)
        stderr = process.communicate(timeout=60)[1]
        connection.close()  # held open until now: a closed one is an answer (an error)
    assert (process.returncode, stderr) == (130, "interrupted: kftransfer schedule stopped\n")


def test_a_run_request_carries_the_compiled_caching_of_every_task(kfp):
    invoke("submit", "gs://b/p", "--host", kfp.host, "--extract-parts", "2")
    [run] = kfp.bodies("POST", f"{API}/runs")
    spec = spec_of(run)
    assert_caching(spec, cache=True)  # the loop's and the condition's tasks too
    assert {"extract-bottlenecks", "merge-features", "export-model"} <= set(caching_by_task(spec))
    assert (
        "pipeline_root" not in (run["runtime_config"] or {})
        or not run["runtime_config"]["pipeline_root"]
    )


@pytest.mark.parametrize(
    "version,flags,refused",
    [
        ("2.17.0", ["--extract-parts", "2"], ""),
        ("2.14.0", ["--extract-parts", "2"], ""),
        ("2.13.1", ["--extract-parts", "2"], "older than 2.14.0 which this pipeline needs for "
         "--extract-parts > 1 (dsl.Collected of artifacts): upgrade Kubeflow Pipelines; or use "
         "--extract-parts 1"),
        ("2.5.0", [], ""),
        ("2.4.1", [], "older than 2.5.0 which this pipeline needs: upgrade Kubeflow Pipelines"),
    ],
)  # fmt: skip
def test_submit_and_schedule_refuse_a_backend_older_than_the_floor(version, flags, refused):
    with FakeKfp(version=version) as kfp:
        for command in (["submit"], ["schedule", "create"]):
            result = CliRunner().invoke(cli, [*command, "gs://b/p", "--host", kfp.host, *flags])
            if refused:
                assert result.exit_code == 2
                assert result.stderr == (
                    f"error: the KFP backend at {kfp.host} is {version}, {refused}\n"
                )
            else:
                assert result.exit_code == 0, result.output
        sent = kfp.bodies("POST", f"{API}/runs") + kfp.bodies("POST", f"{API}/recurringruns")
        assert len(sent) == (0 if refused else 2)


def test_an_unknown_backend_version_is_a_warning_not_a_refusal():
    with FakeKfp(version="unknown") as kfp:
        result = invoke("submit", "gs://b/p", "--host", kfp.host)
    assert "warning: cannot tell the KFP backend's version" in result.stderr
    assert "this pipeline needs 2.5.0 or newer" in result.stderr


LOGIN_PAGE = b"<html><body>Sign in</body></html>"


@pytest.mark.parametrize(
    "everything, problem",
    [
        # Dex / oauth2-proxy in front of the API, without a session: before, `schedule
        # create` printed "scheduled recurring run None" and exit 0, `list` printed nothing
        (
            (302, {"Location": "/dex/auth?client_id=kubeflow", "Content-Type": "text/html"},
             LOGIN_PAGE),
            "{host} redirects to /dex/auth?client_id=kubeflow, a login page: give a bearer "
            "token (--token or KFTRANSFER_KFP_TOKEN), or reach the API itself (kubectl -n "
            "kubeflow port-forward svc/ml-pipeline-ui 8080:80 and --host http://localhost:8080)",
        ),
        (
            (200, {"Content-Type": "text/html"}, LOGIN_PAGE),
            "{host} is not the KFP API: /apis/v2beta1/healthz answered HTTP 200, not JSON (a "
            "login page?): check --host, e.g. kubectl -n kubeflow port-forward "
            "svc/ml-pipeline-ui 8080:80 and --host http://localhost:8080",
        ),
        (
            (401, {"Content-Type": "application/json"}, b'{"code": 16, "message": "no token"}'),
            "the KFP API at {host} refused us (HTTP 401): give a bearer token (--token or "
            "KFTRANSFER_KFP_TOKEN)",
        ),
    ],
)  # fmt: skip
def test_a_login_page_or_refusal_in_front_of_the_api_is_one_line_before_any_request(
    kfp, everything, problem
):
    kfp.everything = everything
    for command in (
        ["schedule", "create", "gs://b/photos"],
        ["schedule", "list"],
        ["submit", "gs://b/p"],
    ):
        result = CliRunner().invoke(cli, [*command, "--host", kfp.host])
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr == f"error: {problem.format(host=kfp.host)}\n"
    assert {r["path"] for r in kfp.requests} == {f"{API}/healthz"}  # 1 per command


def test_a_server_that_stops_answering_is_one_line_after_the_bound(kfp, monkeypatch):
    # before: `schedule list` waited for ever on a stuck port-forward
    from kftransfer.pipelines import kfp_access

    monkeypatch.setattr(kfp_access, "API_SECONDS", 0.5)
    kfp.silent_paths = {f"{API}/recurringruns"}
    result = CliRunner().invoke(cli, ["schedule", "list", "--host", kfp.host])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith(
        f"error: the KFP API at {kfp.host} did not answer the listing of recurring runs: no "
        "answer within 0.5 s (a stuck port-forward? restart it)\n"
    )
    assert [r["path"] for r in kfp.requests].count(f"{API}/recurringruns") == 1  # not retried
    kfp.silent_paths = {f"{API}/healthz"}
    result = CliRunner().invoke(cli, ["schedule", "list", "--host", kfp.host])
    assert result.stderr == (
        f"error: cannot reach the KFP API at {kfp.host}: no answer within 0.5 s (a stuck "
        "port-forward? restart it)\n"
    )


def test_a_kubeflow_notebooks_mounted_token_is_sent_without_token(kfp, tmp_path, monkeypatch):
    # before: kfp.Client given a host and no token sent no credentials (client.py:291-299)
    token = tmp_path / "token"
    token.write_text("eyJ-notebook\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    invoke("schedule", "list", "--host", kfp.host)
    assert {r["authorization"] for r in kfp.requests} == {"Bearer eyJ-notebook"}
    kfp.requests.clear()
    invoke("schedule", "list", "--host", kfp.host, "--token", "given")
    assert {r["authorization"] for r in kfp.requests} == {"Bearer given"}


def test_a_multi_user_install_in_the_default_namespace_gets_a_warning(kfp):
    kfp.multi_user = True
    listed = invoke("schedule", "list", "--host", kfp.host)
    assert listed.stderr == (
        f"warning: {kfp.host} is a multi-user KFP install: runs belong in your profile's "
        "namespace, give --namespace\n"
    )
    assert invoke("schedule", "list", "--host", kfp.host, "--namespace", "alice").stderr == ""


def test_a_run_without_run_name_is_named_after_the_pipeline_not_a_temporary_file(kfp):
    invoke("submit", "gs://b/p", "--host", kfp.host)
    [run] = kfp.bodies("POST", f"{API}/runs")
    assert re.fullmatch(
        r"kftransfer \d{4}-\d\d-\d\d \d\d-\d\d-\d\d", run["display_name"]
    )  # was pipeline.yaml ...


def test_runs_into_an_archived_experiment_get_a_warning(kfp):
    # the API files runs under an archived experiment, which the UI's default views hide
    kfp.experiments["e-1"] = {"experiment_id": "e-1", "display_name": "kftransfer",
                              "storage_state": "ARCHIVED"}  # fmt: skip
    for command in (["submit"], ["schedule", "create"]):
        result = invoke(*command, "gs://b/p", "--host", kfp.host)
        assert (
            "warning: experiment 'kftransfer' is archived, so the KFP UI hides its runs: "
            "restore it in the UI (Experiments, Archive), or give another --experiment\n"
        ) in result.stderr
    assert [body["experiment_id"] for body in kfp.bodies("POST", f"{API}/runs")] == ["e-1"]


def test_an_answer_without_an_id_is_an_error_not_a_success(kfp):
    kfp.without_ids = True
    result = CliRunner().invoke(cli, ["submit", "gs://b/p", "--host", kfp.host])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.endswith(
        f"error: {kfp.host} answered the run without an id, so it is not the KFP API (a login "
        "page?): check --host and --token\n"
    )


@pytest.mark.parametrize(
    "cron, problem",
    [
        ("² 0 3 * * *", "the second field '²' has '²', not a number from 0 to 59"),  # traceback
        ("0 ٣ 3 * * *", "the minute field '٣' has '٣', not a number from 0 to 59"),  # HTTP 400
        ("@every 0s", "KFP would run it every second (it rounds shorter intervals up to 1s): "
                      "give 1s or more, e.g. '@every 24h'"),  # robfig: every second
    ],
)  # fmt: skip
def test_a_cron_go_would_read_otherwise_is_refused_before_any_request(kfp, cron, problem):
    result = CliRunner().invoke(
        cli, ["schedule", "create", "gs://b/p", "--host", kfp.host, "--cron", cron]
    )
    assert result.exit_code == 2 and kfp.requests == []
    assert result.stderr.startswith(f"error: --cron {cron!r}: {problem}")


def test_a_descriptor_is_sent_without_the_spaces_around_it(kfp):
    # robfig/cron takes a descriptor only at the first character and whole: 400 before
    invoke("schedule", "create", "gs://b/p", "--host", kfp.host, "--cron", " @daily ")
    [recurring] = kfp.bodies("POST", f"{API}/recurringruns")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "@daily"}}
