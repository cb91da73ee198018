"""Click options generated from the hyper-parameter dataclasses (one source of truth)."""

import dataclasses
from collections.abc import Callable
from typing import Any

import click


def config_options(config_cls: type, exclude: tuple[str, ...] = ()) -> Callable:
    """Adds one `--option` per field of `config_cls`, with its default and help."""

    def decorate(command: Callable) -> Callable:
        for field in reversed(dataclasses.fields(config_cls)):
            if field.name in exclude:
                continue
            flag = field.name.replace("_", "-")
            help_text = field.metadata.get("help", "")
            if field.type is bool:
                option = click.option(
                    f"--{flag}/--no-{flag}",
                    default=field.default,
                    show_default=True,
                    help=help_text,
                )
            else:
                option = click.option(
                    f"--{flag}",
                    type=field.type,
                    default=field.default,
                    show_default=True,
                    help=help_text,
                )
            command = option(command)
        return command

    return decorate


def pop_config(config_cls: type, kwargs: dict[str, Any]) -> Any:
    """Builds `config_cls` from (and removes its fields from) click's keyword arguments."""
    names = {field.name for field in dataclasses.fields(config_cls)}
    return config_cls(**{name: kwargs.pop(name) for name in names if name in kwargs})


KFP_TYPES = {"String": str, "Integer": int, "Float": float, "Boolean": bool}
ALIASES = {"export_uri": ("--export",)}


def field_help(name: str) -> str:
    """The help text of a run-time parameter: its dataclass field's, or a location's."""
    from kftransfer.components.core import config
    from kftransfer.pipelines.transfer_learning import LOCATION_HELP

    for config_cls in (
        config.SplitConfig,
        config.ExtractConfig,
        config.HeadConfig,
        config.FineTuneConfig,
        config.EvalConfig,
    ):
        for field in dataclasses.fields(config_cls):
            if field.name == name:
                return field.metadata.get("help", "")
    return LOCATION_HELP.get(name, "")


def pipeline_parameters() -> dict[str, tuple[type, Any]]:
    """Every run-time parameter of the pipeline but `source`: name -> (type, default)."""
    from kftransfer.pipelines.transfer_learning import transfer_learning

    inputs = transfer_learning.component_spec.inputs
    return {name: (KFP_TYPES[s.type], s.default) for name, s in inputs.items() if name != "source"}


def pipeline_options(command: Callable) -> Callable:
    """Adds an option per pipeline parameter (`--backbone`, `--fine-tune-epochs`, ...)."""
    for name, (kind, default) in reversed(pipeline_parameters().items()):
        flag = "--" + name.replace("_", "-")
        names = [flag, *ALIASES.get(name, ()), name]
        if kind is bool:
            names = [f"{flag}/--no-{flag[2:]}", name]
        option = click.option(
            *names, type=kind, default=default, show_default=True, help=field_help(name)
        )
        command = option(command)
    return command


def pop_pipeline_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's arguments from (and removed from) click's keyword arguments."""
    return {name: kwargs.pop(name) for name in pipeline_parameters() if name in kwargs}


def parse_pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    """`KEY=VALUE` strings -> pairs, or a UsageError naming `option`."""
    pairs = []
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key or not rest:
            raise click.UsageError(f"{option} {value!r}: use KEY=VALUE")
        pairs.append((key, rest))
    return pairs


def cluster_options(command: Callable) -> Callable:
    """The compile-time Kubernetes options of compile, submit and schedule."""
    from kftransfer.components.component import DEFAULT_IMAGE
    from kftransfer.pipelines.settings import STEPS

    steps = ", ".join(STEPS)
    options = [
        click.option(
            "--gpu-count",
            type=int,
            default=1,
            show_default=True,
            help="GPUs per GPU step (extract, fine_tune); 0 for CPU only.",
        ),
        click.option(
            "--gpu-type",
            default="nvidia.com/gpu",
            show_default=True,
            help="Accelerator resource name.",
        ),
        click.option("--gpu-on-head", is_flag=True, help="Give head training a GPU too."),
        click.option(
            "--node-selector",
            multiple=True,
            metavar="KEY=VALUE",
            help="Node label of GPU steps, e.g. cloud.google.com/gke-accelerator="
            "nvidia-tesla-t4 (repeatable).",
        ),
        click.option(
            "--toleration",
            multiple=True,
            metavar="KEY[=VALUE]:EFFECT",
            help="Taint GPU steps tolerate, e.g. nvidia.com/gpu:NoSchedule (repeatable).",
        ),
        click.option(
            "--cpu",
            multiple=True,
            metavar="STEP=REQUEST[:LIMIT]",
            help=f"CPU of a step ({steps}), e.g. fine_tune=8:16 (repeatable).",
        ),
        click.option(
            "--memory",
            multiple=True,
            metavar="STEP=REQUEST[:LIMIT]",
            help="Memory of a step, e.g. fine_tune=32G:64G (repeatable).",
        ),
        click.option(
            "--retries",
            type=int,
            default=3,
            show_default=True,
            help="Retries of the extract and training steps (preemption).",
        ),
        click.option(
            "--extract-parts",
            "--extract-shards",
            "extract_parts",
            type=int,
            default=1,
            show_default=True,
            help="Parallel extraction pods (ParallelFor).",
        ),
        click.option(
            "--pvc",
            multiple=True,
            metavar="NAME=MOUNT_PATH",
            help="PersistentVolumeClaim mounted into every step, e.g. models=/mnt/models, for "
            "sources, caches and exports on a shared volume (repeatable).",
        ),
        click.option(
            "--image",
            envvar="KFTRANSFER_IMAGE",
            default="",
            help=f"Container image of every step (env KFTRANSFER_IMAGE); default "
            f"{DEFAULT_IMAGE}, or its -gpu variant with --gpu-count > 0.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def pop_cluster_settings(kwargs: dict[str, Any]):
    """ClusterSettings from (and removed from) click's keyword arguments."""
    from kftransfer.pipelines.settings import DEFAULT_RESOURCES, ClusterSettings, Toleration

    resources = {step: list(values) for step, values in DEFAULT_RESOURCES.items()}
    for option, offset in (("cpu", 0), ("memory", 2)):
        for step, value in parse_pairs(kwargs.pop(option), f"--{option}"):
            if step not in resources:
                raise click.UsageError(
                    f"--{option} {step}=...: no step {step!r} ({', '.join(resources)})"
                )
            request, _, limit = value.partition(":")
            resources[step][offset : offset + 2] = [request, limit or request]
    try:
        tolerations = tuple(Toleration.parse(text) for text in kwargs.pop("toleration"))
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    return ClusterSettings(
        gpu_count=kwargs.pop("gpu_count"),
        gpu_type=kwargs.pop("gpu_type"),
        gpu_on_head=kwargs.pop("gpu_on_head"),
        node_selector=tuple(parse_pairs(kwargs.pop("node_selector"), "--node-selector")),
        tolerations=tolerations,
        resources={s: tuple(v) for s, v in resources.items()},
        retries=kwargs.pop("retries"),
        extract_parts=kwargs.pop("extract_parts"),
        volumes=tuple(parse_pairs(kwargs.pop("pvc"), "--pvc")),
        image=kwargs.pop("image"),
    )
