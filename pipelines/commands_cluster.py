"""The cluster commands: compile, submit, schedule."""

import click

from kftransfer.components.core.errors import UserError
from kftransfer.pipelines.options import (
    cluster_options,
    pipeline_options,
    pop_cluster_settings,
    pop_pipeline_arguments,
)


def server_options(command):
    """--host, --namespace, --token: where the KFP API is and how to reach it."""
    options = [
        click.option(
            "--host",
            envvar="KFTRANSFER_KFP_HOST",
            required=True,
            help="KFP API endpoint, e.g. http://localhost:8080 (env KFTRANSFER_KFP_HOST).",
        ),
        click.option(
            "--namespace",
            default="kubeflow",
            show_default=True,
            help="Namespace of the runs (multi-user installs: your profile).",
        ),
        click.option(
            "--token",
            envvar="KFTRANSFER_KFP_TOKEN",
            default="",
            help="Bearer token (env KFTRANSFER_KFP_TOKEN); default: kubeconfig or "
            "in-cluster credentials.",
        ),
        click.option(
            "--experiment",
            default="kftransfer",
            show_default=True,
            help="Experiment to file the run under.",
        ),
        click.option("--pipeline-root", default="", help="Artifact root, e.g. gs://bucket/kfp."),
        click.option(
            "--cache/--no-cache",
            default=True,
            show_default=True,
            help="KFP step caching for this run.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command(name="compile")
@click.option("-o", "--output", default="pipeline.yaml", show_default=True, help="YAML to write.")
@click.option("--pipeline-root", default="", help="Default artifact root, e.g. gs://bucket/kfp.")
@cluster_options
def compile_command(output: str, pipeline_root: str, **kwargs) -> None:
    r"""Compile the pipeline to a KFP v2 YAML package (upload it in the KFP UI, or submit).

    GPU steps (extract, fine-tune) request --gpu-count of --gpu-type, with the node
    selectors and tolerations given; every step gets CPU/memory requests and limits;
    extract and training steps retry with backoff.

    \b
    Examples:
      kftransfer compile -o pipeline.yaml --pipeline-root gs://bucket/kfp
      kftransfer compile -o pipeline.yaml --gpu-count 1 \
        --node-selector cloud.google.com/gke-accelerator=nvidia-tesla-t4 \
        --toleration nvidia.com/gpu:NoSchedule --extract-parts 4
      kftransfer compile -o cpu.yaml --gpu-count 0 --image registry.example.com/kftransfer:0.1.0
    """
    from kftransfer.pipelines.transfer_learning import compile_pipeline

    compile_pipeline(output, pop_cluster_settings(kwargs), pipeline_root)
    click.echo(f"wrote {output}")


@click.command()
@click.argument("source")
@server_options
@click.option("--run-name", default="", help="Display name of the run.")
@cluster_options
@pipeline_options
def submit(
    source: str,
    host: str,
    namespace: str,
    token: str,
    experiment: str,
    pipeline_root: str,
    cache: bool,
    run_name: str,
    **kwargs,
) -> None:
    r"""Submit one run of the pipeline on SOURCE to a KFP server.

    \b
    Examples:
      kftransfer submit gs://bucket/photos --host http://localhost:8080 \
        --pipeline-root gs://bucket/kfp --export gs://bucket/models
      kftransfer submit gs://bucket/photos --host https://kfp.example.com --no-cache \
        --gpu-count 2 --backbone efficientnet_b0 --fine-tune-epochs 20
    """
    from kftransfer.pipelines.kfp_server import kfp_client
    from kftransfer.pipelines.kfp_server import submit as submit_run

    settings = pop_cluster_settings(kwargs)
    arguments = {"source": source, **pop_pipeline_arguments(kwargs)}
    client = kfp_client(host, namespace, token)
    run_id = submit_run(
        client,
        arguments,
        settings,
        experiment=experiment,
        run_name=run_name,
        namespace=namespace,
        pipeline_root=pipeline_root,
        caching=cache,
    )
    click.echo(f"submitted run {run_id}: {host.rstrip('/')}/#/runs/details/{run_id}")


@click.command()
@click.argument("source", required=False)
@server_options
@click.option(
    "--cron",
    default="0 0 3 * * *",
    show_default=True,
    help="When to run: 6-field cron, seconds first (03:00 every day).",
)
@click.option("--name", default="", help="Name of the recurring run.")
@click.option(
    "--max-concurrency",
    type=int,
    default=1,
    show_default=True,
    help="Runs of this schedule at once.",
)
@click.option(
    "--catchup/--no-catchup",
    default=False,
    show_default=True,
    help="Run the missed intervals after a pause.",
)
@click.option("--list", "list_them", is_flag=True, help="List the recurring runs and exit.")
@click.option("--delete", "delete_id", default="", help="Delete the recurring run with this id.")
@cluster_options
@pipeline_options
def schedule(
    source: str | None,
    host: str,
    namespace: str,
    token: str,
    experiment: str,
    pipeline_root: str,
    cache: bool,
    cron: str,
    name: str,
    max_concurrency: int,
    catchup: bool,
    list_them: bool,
    delete_id: str,
    **kwargs,
) -> None:
    r"""Retrain on SOURCE on a schedule (a KFP recurring run), or list / delete schedules.

    Each run re-splits SOURCE (new images never move old ones between splits), reuses
    the feature cache, and exports only if the new model beats the one in production.

    \b
    Examples:
      kftransfer schedule gs://bucket/photos --host http://localhost:8080 \
        --cron "0 0 3 * * *" --cache-uri gs://bucket/cache --export gs://bucket/models
      kftransfer schedule --list --host http://localhost:8080
      kftransfer schedule --delete 5a1e... --host http://localhost:8080
    """
    from kftransfer.pipelines import kfp_server

    client = kfp_server.kfp_client(host, namespace, token)
    if list_them:
        for item in kfp_server.list_schedules(client, namespace):
            click.echo(f"{item['id']}  {item['status']}  {item['cron']}  {item['name']}")
        return
    if delete_id:
        client.delete_recurring_run(delete_id)
        click.echo(f"deleted recurring run {delete_id}")
        return
    if not source:
        raise UserError("schedule needs SOURCE (or --list / --delete ID)")
    settings = pop_cluster_settings(kwargs)
    arguments = {"source": source, **pop_pipeline_arguments(kwargs)}
    recurring_id = kfp_server.schedule(
        client,
        arguments,
        settings,
        experiment=experiment,
        name=name,
        namespace=namespace,
        cron=cron,
        max_concurrency=max_concurrency,
        catchup=catchup,
        pipeline_root=pipeline_root,
        caching=cache,
    )
    click.echo(f"scheduled recurring run {recurring_id} ({cron})")
