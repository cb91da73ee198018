"""The pipeline on a KFP server: the client, one-off runs and recurring runs (schedules)."""

import contextlib
import dataclasses
import os
import sys
import tempfile
import warnings

from kftransfer.components.core.errors import UserError
from kftransfer.pipelines.settings import ClusterSettings
from kftransfer.pipelines.transfer_learning import PIPELINE_NAME, compile_pipeline


def kfp_client(host: str, namespace: str, token: str | None):
    """A `kfp.Client` for `host` (token, or the usual kubeconfig / in-cluster credentials)."""
    import kfp

    warnings.filterwarnings("ignore", "This client only works with Kubeflow Pipeline v2")
    try:
        with quiet_kfp():
            return kfp.Client(host=host, namespace=namespace, existing_token=token or None)
    except Exception as err:  # noqa: BLE001 - connection, auth and HTTP errors all mean this
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UserError(f"cannot reach the KFP API at {host}: {detail}") from err


@contextlib.contextmanager
def quiet_kfp():
    """Sends what kfp.Client prints (experiment and run links) to stderr, keeping stdout ours."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def submit(
    client,
    arguments: dict,
    settings: ClusterSettings,
    *,
    experiment: str,
    run_name: str,
    namespace: str,
    pipeline_root: str,
    caching: bool,
) -> str:
    """Compiles and submits one run; returns its id."""
    with tempfile.TemporaryDirectory() as tmp:
        package = os.path.join(tmp, "pipeline.yaml")
        compile_pipeline(package, dataclasses.replace(settings, caching=caching))
        with quiet_kfp():
            result = client.create_run_from_pipeline_package(
                package,
                arguments=arguments,
                run_name=run_name or None,
                experiment_name=experiment,
                namespace=namespace,
                pipeline_root=pipeline_root or None,
                enable_caching=caching,
            )
    return result.run_id


def check_cron(cron: str) -> str:
    """KFP's cron has six fields, seconds first; a five-field cron is a clear error."""
    if len(cron.split()) != 6:
        raise UserError(
            f"--cron {cron!r}: KFP cron has 6 fields, seconds first, e.g. '0 0 3 * * *' "
            "for 03:00 every day"
        )
    return cron


def schedule(
    client,
    arguments: dict,
    settings: ClusterSettings,
    *,
    experiment: str,
    name: str,
    namespace: str,
    cron: str,
    max_concurrency: int,
    catchup: bool,
    pipeline_root: str,
    caching: bool,
) -> str:
    """Creates a recurring run; returns its id."""
    settings = dataclasses.replace(settings, caching=caching)
    with quiet_kfp():
        found = client.create_experiment(experiment, namespace=namespace)
    with tempfile.TemporaryDirectory() as tmp:
        package = os.path.join(tmp, "pipeline.yaml")
        compile_pipeline(package, settings)
        recurring = client.create_recurring_run(
            experiment_id=found.experiment_id,
            job_name=name or f"{PIPELINE_NAME}-retraining",
            cron_expression=check_cron(cron),
            max_concurrency=max_concurrency,
            no_catchup=not catchup,
            params=arguments,
            pipeline_package_path=package,
            pipeline_root=pipeline_root or None,
            enable_caching=caching,
        )
    return recurring.recurring_run_id


def list_schedules(client, namespace: str) -> list[dict]:
    """The recurring runs: id, name, cron, status."""
    response = client.list_recurring_runs(namespace=namespace, page_size=100)
    return [
        {
            "id": r.recurring_run_id,
            "name": r.display_name,
            "status": r.status,
            "cron": getattr(getattr(r.trigger, "cron_schedule", None), "cron", None),
        }
        for r in response.recurring_runs or []
    ]
