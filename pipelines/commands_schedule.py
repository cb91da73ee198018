"""`kftransfer schedule create | list | delete`: KFP recurring runs that retrain."""

import click

from kftransfer.pipelines.backend_rules import MAX_CONCURRENCY
from kftransfer.pipelines.commands_cluster import (
    connection_options,
    job_from_options,
    job_options,
)
from kftransfer.pipelines.options import Command, GroupedOption
from kftransfer.pipelines.terminal import printable

SCHEDULE = "Schedule"

# The ScheduledWorkflow controller reads a cron in its CRON_SCHEDULE_TIMEZONE, which the
# KFP manifests set from pipeline-install-config's cronScheduleTimezone, "UTC" (rule
# `cron-time-zone`, docs/kfp-backend.md); a recurring run has no time zone of its own.
CRON_TIME_ZONE = "in the cluster's cron time zone: UTC unless its KFP install sets another"


class _ScheduleGroup(click.Group):
    """`schedule create|list|delete`, still taking the older forms.

    `schedule SOURCE ...`, `schedule --list` and `schedule --delete ID` work as before,
    with a deprecation line on stderr.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Rewrites the deprecated forms into subcommands."""
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = list(args)
            if "--list" in args:
                args.remove("--list")
                args, new = ["list", *args], "kftransfer schedule list"
            elif "--delete" in args and args.index("--delete") + 1 < len(args):
                at = args.index("--delete")
                recurring_id = args[at + 1]
                del args[at : at + 2]
                args, new = ["delete", recurring_id, *args], "kftransfer schedule delete ID"
            else:
                args, new = ["create", *args], "kftransfer schedule create SOURCE"
            click.echo(f"warning: this form of `schedule` is deprecated: use `{new}`", err=True)
        return super().parse_args(ctx, args)


@click.group(cls=_ScheduleGroup)
def schedule() -> None:
    """Retrain on a schedule: create, list or delete KFP recurring runs."""


def _schedule_option(*names: str, **kwargs) -> click.Option:
    return click.option(*names, cls=GroupedOption, group=SCHEDULE, **kwargs)


@schedule.command(
    "create",
    cls=Command,
    examples=[
        "kftransfer schedule create gs://bucket/photos --host http://localhost:8080 --cron "
        '"0 0 3 * * *" --cache-uri gs://bucket/cache --export gs://bucket/models',
    ],
)
@click.argument("source")
@_schedule_option(
    "--cron",
    default="0 0 3 * * *",
    show_default=True,
    help="When to run: 6-field cron, seconds first (03:00 every day), in the cluster's cron "
    "time zone (UTC unless its KFP install sets another).",
)
@_schedule_option("--name", default="", help="Name of the recurring run.")
@_schedule_option(
    "--max-concurrency",
    type=click.IntRange(1, MAX_CONCURRENCY),
    default=1,
    show_default=True,
    help=f"Runs of it at once (1-{MAX_CONCURRENCY}, the API's bounds).",
)
@_schedule_option(
    "--catchup/--no-catchup",
    default=False,
    show_default=True,
    help="Run the missed intervals after a pause.",
)
@_schedule_option(
    "--replace",
    is_flag=True,
    help="Replace the recurring run of the same name or export destination (else refused).",
)
@job_options
def schedule_create(
    source: str, cron: str, name: str, max_concurrency: int, catchup: bool, replace: bool, **kwargs
) -> None:
    """Retrain on SOURCE on a schedule (a KFP recurring run).

    Each run re-splits SOURCE (new images never move old ones between splits), reuses
    the feature cache, and exports only if the new model beats the one in production.
    """
    from kftransfer.pipelines import schedules
    from kftransfer.pipelines.cron import check_cron

    cron = check_cron(cron)
    schedules.check_schedule_name(name)
    job = job_from_options(source, kwargs)
    recurring_id, replaced = schedules.schedule(
        job,
        name=name,
        cron=cron,
        max_concurrency=max_concurrency,
        catchup=catchup,
        replace=replace,
    )
    click.echo(f"scheduled recurring run {recurring_id} (cron '{cron}', {CRON_TIME_ZONE})")
    for old_id in replaced:
        click.echo(f"deleted recurring run {old_id}, which it replaces")


@schedule.command("list", cls=Command, examples=["kftransfer schedule list --host URL"])
@connection_options
def schedule_list(host: str, namespace: str, token: str) -> None:
    """List the recurring runs: id, status, cron, name, export destination."""
    from kftransfer.pipelines import kfp_server, schedules

    client = kfp_server.connect(host, namespace, token).client
    with kfp_server.refusals_as_errors(host, "listing of recurring runs"):
        listed = schedules.list_schedules(client, namespace)
    for item in listed:
        export = f"  -> {item['export']}" if item["export"] else ""
        line = f"{item['id']}  {item['status']}  {item['cron']}  {item['name']}{export}"
        click.echo(printable(line))  # names come from the server: anyone's, from the UI


@schedule.command("delete", cls=Command, examples=["kftransfer schedule delete ID --host URL"])
@click.argument("recurring_run_id")
@connection_options
def schedule_delete(recurring_run_id: str, host: str, namespace: str, token: str) -> None:
    """Delete the recurring run RECURRING_RUN_ID."""
    from kftransfer.pipelines import kfp_server, schedules

    client = kfp_server.connect(host, namespace, token).client
    with kfp_server.refusals_as_errors(host, "deletion"):
        schedules.delete_schedule(client, recurring_run_id)
    click.echo(f"deleted recurring run {recurring_run_id}")
