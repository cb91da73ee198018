"""The pipeline on a KFP server: the client, its version, one-off runs (schedules: schedules.py)."""

import contextlib
import dataclasses
import datetime
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kftransfer.components.core.errors import UserError
from kftransfer.pipelines import kfp_access
from kftransfer.pipelines.backend_contract import parse_version, required_backend
from kftransfer.pipelines.settings import ClusterSettings
from kftransfer.pipelines.transfer_learning import PIPELINE_NAME, compile_pipeline


@dataclass(frozen=True)
class Server:
    """A KFP API checked to be one and to let us in: its client and its healthz answer.

    Attributes:
        client: a `kfp.Client` whose requests give up after `kfp_access.API_SECONDS`.
        healthz: the raw `/apis/v2beta1/healthz` answer: `tag_name`, `commit_sha`,
            `multi_user`, ... (the SDK's typed call drops the version, rule
            `healthz-version`).
    """

    client: Any
    healthz: dict


def connect(host: str, namespace: str, token: str | None) -> Server:
    """The KFP API at `host`, checked (`kfp_access.check_api`), and a client for it.

    Credentials: `token`, else the token a Kubeflow notebook has mounted, else none.

    Raises:
        UserError: the API cannot be reached, redirects to a login page, refuses us, or
            is not the KFP API (the line names the host, the cause and the fix).
    """
    import kfp

    bearer, mounted = token or "", "" if token else kfp_access.service_account_token_path()
    if mounted:
        with open(mounted, encoding="utf-8") as file:
            bearer = file.read().strip()
    healthz = kfp_access.check_api(host, bearer)
    if healthz.get("multi_user") and namespace == "kubeflow":
        print(
            f"warning: {host} is a multi-user KFP install: runs belong in your profile's "
            "namespace, give --namespace",
            file=sys.stderr,
        )
    warnings.filterwarnings("ignore", "This client only works with Kubeflow Pipeline v2")
    try:
        with quiet_kfp():
            client = kfp.Client(host=host, namespace=namespace, existing_token=bearer or None)
    except Exception as err:  # noqa: BLE001 - connection, auth and HTTP errors all mean this
        raise UserError(f"cannot reach the KFP API at {host}: {first_line(err)}") from err
    kfp_access.bound_requests(client)
    return Server(client, healthz)


def first_line(err: BaseException) -> str:
    """The first line of an exception's text (or its type), at most 200 characters."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


@contextlib.contextmanager
def quiet_kfp() -> Iterator[None]:
    """Sends what kfp.Client prints (experiment and run links) to stderr, keeping stdout ours."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@dataclass(frozen=True)
class Job:
    """One submission to a KFP server: where, what, and how.

    Attributes:
        client: a `kfp.Client`.
        healthz: the server's healthz answer (`Server.healthz`: its version).
        host: the API endpoint (for links).
        arguments: the pipeline's arguments (`source` and the rest).
        settings: the compile-time cluster settings.
        experiment: the experiment to file runs under.
        namespace: the runs' namespace.
        pipeline_root: the runs' artifact root ('' for the server's default).
        caching: KFP step caching of the steps whose outputs follow from their inputs.
    """

    client: Any
    healthz: dict
    host: str
    arguments: dict
    settings: ClusterSettings
    experiment: str
    namespace: str
    pipeline_root: str
    caching: bool

    @contextlib.contextmanager
    def package(self) -> Iterator[str]:
        """The compiled pipeline as a temporary YAML file, checked against the backend.

        Caching is compiled into each task (on for the steps whose outputs follow from their
        inputs when `caching`, never for the others); the SDK client's `enable_caching` is
        never passed, because it would overwrite every root task's setting (rule
        `no-caching-override`, docs/kfp-backend.md).

        Raises:
            UserError: the server's backend is older than the pipeline needs, or the
                settings break one of its rules.
        """
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pipeline.yaml")
            spec = compile_pipeline(path, dataclasses.replace(self.settings, caching=self.caching))
            check_backend(self.healthz, self.host, required_backend(spec), self.settings)
            yield path


def check_backend(healthz: dict, host: str, needed: str, settings: ClusterSettings) -> str:
    """Refuses a backend older than `needed`; returns its version tag ('' when unknown).

    `healthz` is the server's healthz answer (`Server.healthz`), which names its version.

    Raises:
        UserError: the backend is older than `needed`.
    """
    tag = healthz.get("tag_name", "")
    version = parse_version(tag)
    if version is None:
        print(
            f"warning: cannot tell the KFP backend's version at {host} (tag {tag or 'none'}); "
            f"this pipeline needs {needed} or newer",
            file=sys.stderr,
        )
        return ""
    if version < parse_version(needed):
        why = (
            " for --extract-parts > 1 (dsl.Collected of artifacts)"
            if (settings.extract_parts > 1)
            else ""
        )
        fix = "; or use --extract-parts 1" if settings.extract_parts > 1 else ""
        raise UserError(
            f"the KFP backend at {host} is {tag}, older than {needed} which this pipeline "
            f"needs{why}: upgrade Kubeflow Pipelines{fix}"
        )
    return tag


@contextlib.contextmanager
def refusals_as_errors(host: str, what: str) -> Iterator[None]:
    """Turns the API server's refusal of a request (HTTP 4xx/5xx), or no answer, into one line."""
    import kfp_server_api
    import urllib3

    try:
        yield
    except kfp_server_api.ApiException as err:
        raise UserError(
            f"the KFP API at {host} refused the {what}: HTTP {err.status} {api_message(err)}"
        ) from err
    except urllib3.exceptions.HTTPError as err:
        problem = kfp_access.transport_problem(err)
        raise UserError(f"the KFP API at {host} did not answer the {what}: {problem}") from err


def answered_id(value: str | None, host: str, what: str) -> str:
    """The id the server gave a new `what`.

    Raises:
        UserError: it gave none: its answer was not the KFP API's.
    """
    if not value:
        raise UserError(
            f"{host} answered the {what} without an id, so it is not the KFP API (a login "
            "page?): check --host and --token"
        )
    return value


def api_message(err) -> str:
    """The message of an API error's JSON body (or its reason), on one line."""
    try:
        body = json.loads(err.body or "{}")
    except ValueError:
        body = {}
    message = body.get("message") or body.get("error") or err.reason or ""
    return " ".join(str(message).split())[:300]


def submit(job: Job, run_name: str = "") -> str:
    """Compiles and submits one run; returns its id.

    Without `run_name` the run is named `kftransfer <local time>`: the SDK would name it
    after the package's temporary file (`pipeline.yaml 2026-11-26 03-45-00`).
    """
    run_name = run_name or f"{PIPELINE_NAME} {datetime.datetime.now():%Y-%m-%d %H-%M-%S}"
    with job.package() as package:
        experiment = experiment_id(job)
        with quiet_kfp(), refusals_as_errors(job.host, "run"):
            result = job.client.create_run_from_pipeline_package(
                package,
                arguments=job.arguments,
                run_name=run_name,
                experiment_id=experiment,
                namespace=job.namespace,
                pipeline_root=job.pipeline_root or None,
            )
    return answered_id(result.run_id, job.host, "run")


def experiment_id(job: Job) -> str:
    """The id of `job.experiment` in `job.namespace`, created when it does not exist.

    An archived experiment gets a warning: runs filed under it are hidden from the KFP
    UI's default views (the API files them there all the same).

    Raises:
        UserError: the server refused, or answered without an id.
    """
    with refusals_as_errors(job.host, f"experiment {job.experiment!r}"), quiet_kfp():
        found = job.client.create_experiment(job.experiment, namespace=job.namespace)
    if found.storage_state == "ARCHIVED":
        print(
            f"warning: experiment {job.experiment!r} is archived, so the KFP UI hides its runs: "
            "restore it in the UI (Experiments, Archive), or give another --experiment",
            file=sys.stderr,
        )
    return answered_id(found.experiment_id, job.host, "experiment")


def run_link(job: Job, run_id: str) -> str:
    """The run's page in the KFP UI."""
    return f"{job.host.rstrip('/')}/#/runs/details/{run_id}"
