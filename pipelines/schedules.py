"""Recurring runs (schedules) of the pipeline on a KFP server: one per name and destination.

The backend keeps any number of recurring runs of one name (rule `one-schedule`), so
`schedule` refuses a second of one name or export destination, or replaces it.
"""

from kftransfer.components.core.errors import UserError
from kftransfer.pipelines.backend_contract import scheduled_workflow_prefix
from kftransfer.pipelines.cron import check_cron
from kftransfer.pipelines.kfp_server import (
    Job,
    answered_id,
    experiment_id,
    refusals_as_errors,
)
from kftransfer.pipelines.transfer_learning import PIPELINE_NAME


def schedule(
    job: Job, *, name: str, cron: str, max_concurrency: int, catchup: bool, replace: bool = False
) -> tuple[str, list[str]]:
    """Creates a recurring run; returns its id and the ids of those it replaced.

    The backend keeps any number of recurring runs of one name (rule `one-schedule`), and
    two of one export destination would race to publish into it. So an existing one of
    the same name or the same `export_uri` is refused, or with `replace` deleted once the
    new one exists.

    Raises:
        UserError: a recurring run of that name or export destination exists (without
            `replace`), the name would be refused by Kubernetes, or the server refused a
            request.
    """
    cron = check_cron(cron)
    name = name or f"{PIPELINE_NAME}-retraining"
    check_schedule_name(name)
    export_uri = job.arguments.get("export_uri") or ""
    with refusals_as_errors(job.host, "listing of recurring runs"):
        existing = _same_schedule(recurring_runs(job.client, job.namespace), name, export_uri)
    if existing and not replace:
        raise UserError(_conflict_line(existing[0], name, export_uri))
    with job.package() as package:
        experiment = experiment_id(job)
        with refusals_as_errors(job.host, "recurring run"):
            recurring = job.client.create_recurring_run(
                experiment_id=experiment,
                job_name=name,
                cron_expression=cron,
                max_concurrency=max_concurrency,
                no_catchup=not catchup,
                params=job.arguments,
                pipeline_package_path=package,
                pipeline_root=job.pipeline_root or None,
            )
    recurring_id = answered_id(recurring.recurring_run_id, job.host, "recurring run")
    old_ids = [old.recurring_run_id for old in existing]
    _delete_replaced(job, old_ids, f"{recurring_id} ({name!r})")
    return recurring_id, old_ids


def _delete_replaced(job: Job, old_ids: list[str], new: str) -> None:
    """Deletes the recurring runs `new` replaces; a refusal names the ones left running."""
    for done, old_id in enumerate(old_ids):
        try:
            with refusals_as_errors(job.host, f"deletion of recurring run {old_id}"):
                delete_schedule(job.client, old_id)
        except UserError as err:
            left = " and ".join(f"kftransfer schedule delete {i}" for i in old_ids[done:])
            raise UserError(
                f"{err}; its replacement, recurring run {new}, was created, so both now run: "
                f"delete the old one when you may ({left})"
            ) from err


def check_schedule_name(name: str) -> None:
    """Refuses a name Kubernetes would refuse for the recurring run (rule `schedule-name`).

    Raises:
        UserError: the name's ScheduledWorkflow name would start with '-'.
    """
    prefix = scheduled_workflow_prefix(name)
    if prefix.startswith("-"):
        raise UserError(
            f"recurring run name {name!r} would be refused by the cluster: KFP names its "
            f"Kubernetes object after the name's a-z, 0-9 and '-' ({prefix!r}), which must "
            f"start with a letter or digit; start --name with one, e.g. "
            f"{PIPELINE_NAME + ' ' + name!r}"
        )


def recurring_runs(client, namespace: str) -> list:
    """Every recurring run of `namespace`, page after page of 100."""
    found, token = [], ""
    while True:
        response = client.list_recurring_runs(page_token=token, page_size=100, namespace=namespace)
        found += response.recurring_runs or []
        token = response.next_page_token or ""
        if not token:
            return found


def _cron_of(recurring) -> str | None:
    return getattr(getattr(recurring.trigger, "cron_schedule", None), "cron", None)


def _export_of(recurring) -> str:
    return ((recurring.runtime_config and recurring.runtime_config.parameters) or {}).get(
        "export_uri"
    ) or ""


def _same_schedule(runs: list, name: str, export_uri: str) -> list:
    """The recurring runs named `name` or exporting to `export_uri` (when it is set).

    Destinations are compared without a trailing `/` (`gs://b/models/` is `gs://b/models`).
    """
    destination = export_uri.rstrip("/")
    return [
        r
        for r in runs
        if r.display_name == name or (destination and _export_of(r).rstrip("/") == destination)
    ]


def _conflict_line(recurring, name: str, export_uri: str) -> str:
    what = (
        f"has the name {name!r}" if recurring.display_name == name else f"exports to {export_uri}"
    )
    return (
        f"recurring run {recurring.recurring_run_id} ({recurring.display_name!r}, "
        f"{recurring.status}, cron '{_cron_of(recurring)}') already {what}: give --replace to "
        "replace it with this one, or delete it first (kftransfer schedule delete "
        f"{recurring.recurring_run_id})"
    )


def list_schedules(client, namespace: str) -> list[dict]:
    """The recurring runs: id, name, cron, status, export destination."""
    return [
        {
            "id": r.recurring_run_id,
            "name": r.display_name,
            "status": r.status,
            "cron": _cron_of(r),
            "export": _export_of(r),
        }
        for r in recurring_runs(client, namespace)
    ]


def delete_schedule(client, recurring_run_id: str) -> None:
    """Deletes a recurring run; a run of it under way goes on (rule `schedule-delete-orphans`).

    The server deletes its ScheduledWorkflow, which owns the Workflows of its runs, with
    the propagation policy asked for, and with none Kubernetes collects them: a nightly
    retrain in progress would be stopped by `schedule create --replace`. `ORPHAN` leaves
    them running; backends before 2.16.0 ignore it (and stop them).
    """
    client._recurring_run_api.recurring_run_service_delete_recurring_run(
        recurring_run_id=recurring_run_id, propagation_policy="ORPHAN"
    )
