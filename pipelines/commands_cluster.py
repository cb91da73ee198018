"""The cluster commands: compile, submit and doctor (and the server options of all)."""

from collections.abc import Callable

import click

from kftransfer.pipelines.options import (
    Command,
    GroupedOption,
    cluster_options,
    pipeline_options,
    pop_cluster_settings,
    pop_pipeline_arguments,
)
from kftransfer.pipelines.terminal import printable

SERVER = "KFP server"


def _server_option(*names: str, **kwargs) -> click.Option:
    return click.option(*names, cls=GroupedOption, group=SERVER, **kwargs)


def connection_options(command: Callable) -> Callable:
    """--host, --namespace, --token: where the KFP API is and how to reach it."""
    options = [
        _server_option(
            "--host",
            envvar="KFTRANSFER_KFP_HOST",
            required=True,
            help="KFP API endpoint, e.g. http://localhost:8080 (env KFTRANSFER_KFP_HOST).",
        ),
        _server_option(
            "--namespace",
            default="kubeflow",
            show_default=True,
            help="Namespace of the runs (multi-user installs: your profile).",
        ),
        _server_option(
            "--token",
            envvar="KFTRANSFER_KFP_TOKEN",
            default="",
            help="Bearer token (env KFTRANSFER_KFP_TOKEN); default: the one a Kubeflow "
            "notebook has mounted, else none.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def job_options(command: Callable) -> Callable:
    """Everything a run on a KFP server needs.

    The connection, experiment, pipeline root, caching, cluster settings and pipeline
    parameters.
    """
    options = [
        connection_options,
        _server_option(
            "--experiment",
            default="kftransfer",
            show_default=True,
            help="Experiment to file the run under.",
        ),
        _server_option("--pipeline-root", default="", help="Artifact root, e.g. gs://bucket/kfp."),
        _server_option(
            "--cache/--no-cache",
            default=True,
            show_default=True,
            help="KFP step caching of the steps whose outputs follow from their inputs.",
        ),
        cluster_options,
        pipeline_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def job_from_options(source: str, kwargs: dict):
    """The `kfp_server.Job` the options describe (removing them from `kwargs`).

    The parameters and settings are validated before the server is contacted.
    """
    from kftransfer.components.core.config import validate_run
    from kftransfer.pipelines import kfp_server

    settings = pop_cluster_settings(kwargs)
    arguments = {"source": source, **pop_pipeline_arguments(kwargs)}
    validate_run(arguments)
    host, namespace = kwargs.pop("host"), kwargs.pop("namespace")
    server = kfp_server.connect(host, namespace, kwargs.pop("token"))
    return kfp_server.Job(
        client=server.client,
        healthz=server.healthz,
        host=host,
        arguments=arguments,
        settings=settings,
        experiment=kwargs.pop("experiment"),
        namespace=namespace,
        pipeline_root=kwargs.pop("pipeline_root"),
        caching=kwargs.pop("cache"),
    )


@click.command(
    name="compile",
    cls=Command,
    examples=[
        "kftransfer compile -o pipeline.yaml --pipeline-root gs://bucket/kfp",
        "kftransfer compile -o pipeline.yaml --gpu-count 1 "
        "--node-selector cloud.google.com/gke-accelerator=nvidia-tesla-t4 "
        "--toleration nvidia.com/gpu:NoSchedule --extract-parts 4",
        "kftransfer compile -o cpu.yaml --gpu-count 0 --image registry.example.com/kft:0.1.0",
    ],
)
@click.option("-o", "--output", default="pipeline.yaml", show_default=True, help="YAML to write.")
@click.option(
    "--pipeline-root",
    default="",
    help="Artifact root the KFP UI pre-fills in its run form, e.g. gs://bucket/kfp. The "
    "backend itself never reads it: runs started otherwise get their namespace's kfp-launcher "
    "ConfigMap root (deploy/kfp-launcher.yaml).",
)
@cluster_options
def compile_command(output: str, pipeline_root: str, **kwargs) -> None:
    """Compile the pipeline to a KFP v2 YAML package (upload it in the KFP UI, or submit).

    GPU steps (extract_bottlenecks, fine_tune) request --gpu-count of --gpu-type, with the
    node selectors and tolerations given; every step gets CPU/memory requests and limits;
    extraction and training steps retry with backoff.
    """
    from kftransfer.pipelines.transfer_learning import compile_pipeline

    compile_pipeline(output, pop_cluster_settings(kwargs), pipeline_root)
    click.echo(f"wrote {output}")
    if pipeline_root:
        click.echo(
            f"note: KFP's UI offers {pipeline_root} as a new run's root, but the backend never "
            "reads a package's root: for runs started another way (API, schedules), set "
            "defaultPipelineRoot in the namespace's kfp-launcher ConfigMap "
            "(deploy/kfp-launcher.yaml) or use `kftransfer submit --pipeline-root`",
            err=True,
        )


@click.command(
    cls=Command,
    examples=[
        "kftransfer submit gs://bucket/photos --host http://localhost:8080 "
        "--pipeline-root gs://bucket/kfp --export gs://bucket/models",
        "kftransfer submit gs://bucket/photos --host https://kfp.example.com --no-cache "
        "--gpu-count 2 --backbone efficientnet_b0 --fine-tune-epochs 20",
    ],
)
@click.argument("source")
@click.option(
    "--run-name", default="", help="Display name of the run.", cls=GroupedOption, group=SERVER
)
@job_options
def submit(source: str, run_name: str, **kwargs) -> None:
    """Submit one run of the pipeline on SOURCE to a KFP server."""
    from kftransfer.pipelines import kfp_server

    job = job_from_options(source, kwargs)
    run_id = kfp_server.submit(job, run_name)
    click.echo(f"submitted run {run_id}: {kfp_server.run_link(job, run_id)}")


@click.command(
    cls=Command,
    examples=[
        "kftransfer doctor --host http://localhost:8080 --pipeline-root gs://bucket/kfp",
        "kftransfer doctor --host https://kfp.example.com --extract-parts 4 --gpu-count 2",
    ],
)
@connection_options
@_server_option("--pipeline-root", default="", help="Artifact root runs will be given.")
@_server_option(
    "--cache/--no-cache", default=True, show_default=True, help="KFP step caching of runs."
)
@cluster_options
def doctor(host: str, namespace: str, token: str, pipeline_root: str, cache: bool, **kwargs):
    """Check what runs of this pipeline will do on a KFP server, before a schedule goes live.

    Prints the server's version against the pipeline's minimum, whether each step's image
    is published, the pipeline root runs will get, caching, retries and the backend rules
    the compiled spec keeps. Exit status 1 when a check fails.
    """
    import dataclasses

    from kftransfer.pipelines import kfp_server
    from kftransfer.pipelines.doctor import diagnose

    settings = dataclasses.replace(pop_cluster_settings(kwargs), caching=cache)
    healthz = kfp_server.connect(host, namespace, token).healthz
    findings = diagnose(healthz, host, namespace, pipeline_root, settings)
    for finding in findings:
        mark = {True: "ok  ", False: "FAIL", None: "??  "}[finding.ok]
        click.echo(printable(f"{mark} {finding.topic}: {finding.text}"))
    if any(finding.ok is False for finding in findings):
        raise SystemExit(1)
