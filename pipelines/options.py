"""Click options generated from the parameter dataclasses, grouped by step in `--help`.

Every run parameter's option comes from its field in `core/config.py` (name, type,
default, help) and every cluster option from its field of `ClusterSettings`, so the CLI
cannot drift from the components and the pipeline.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, get_args

import click

from kftransfer.components.core.config import PIPELINE_CONFIGS, flag, pipeline_fields
from kftransfer.pipelines.settings import ClusterSettings, Toleration

ALIASES = {"export_uri": ("--export",)}
CLUSTER_TITLE = "Cluster (compile-time)"


class GroupedOption(click.Option):
    """An option listed under a heading (`group`) in `--help`."""

    def __init__(self, *args, group: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group


class Command(click.Command):
    """A command whose `--help` lists options under headings and prints examples verbatim.

    Args:
        examples: command lines shown as they are, one per line, after the options.
    """

    def __init__(self, *args, examples: Sequence[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.examples = list(examples)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """One section per heading, in the order the options were declared; `--help` last."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record and isinstance(param, click.Option):
                groups.setdefault(getattr(param, "group", "") or "Options", []).append(record)
        groups["Options"] = groups.pop("Options", [])
        for title, records in groups.items():
            with formatter.section(title):
                formatter.write_dl(records)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:  # noqa: ARG002
        """The examples, never re-wrapped (click's signature)."""
        if self.examples:
            formatter.write_paragraph()
            formatter.write("Examples:\n")
            for line in self.examples:
                formatter.write(f"  {line}\n")


class LabelIssueCount(click.ParamType):
    """`N` (>= 0) or `auto` (every flagged image: -1)."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        """`auto` -> -1, a count -> int; anything else fails with the accepted forms."""
        if isinstance(value, int) or value == "auto":
            return -1 if value == "auto" else value
        if str(value).isdigit():
            return int(value)
        self.fail(f"{value!r} is neither a count nor 'auto'", param, ctx)


class LocalFolder(click.ParamType):
    """A folder on this machine (`file://` allowed), for what kfp.local writes.

    kfp.local takes its pipeline root as a path (`os.path.abspath`), so `gs://b/runs`
    would become the folder `./gs:/b/runs`, with the run's report said to be in the bucket.

    Args:
        elsewhere: what the user may still point at a bucket, said in the refusal.
    """

    name = "FOLDER"

    def __init__(self, elsewhere: str = ""):
        self.elsewhere = elsewhere

    def convert(self, value, param, ctx):
        """The path (without `file://`); a URI of any other scheme fails, saying why."""
        path = str(value).removeprefix("file://")
        if "://" in path:
            also = f" ({self.elsewhere})" if self.elsewhere else ""
            self.fail(
                f"{value} is not on this machine: kfp.local writes a local run's artifacts "
                f"to local folders only; give a folder here{also}",
                param,
                ctx,
            )
        return path


def _field_option(f: dataclasses.Field, group: str, names: Sequence[str] = ()) -> Callable:
    help_text = f.metadata.get("help", "")
    declared = names or [flag(f.name), *ALIASES.get(f.name, ()), f.name]
    if f.type is bool:
        declared = [f"{flag(f.name)}/--no-{flag(f.name)[2:]}", f.name]
    return click.option(
        *declared,
        cls=GroupedOption,
        group=group,
        type=f.type,
        default=f.default,
        show_default=True,
        help=help_text,
    )


def config_options(*config_classes: type, exclude: Sequence[str] = ()) -> Callable:
    """Adds one `--option` per field of the config classes, under each class's title."""

    def decorate(command: Callable) -> Callable:
        options, seen = [], set(exclude)
        for config_cls in config_classes:
            for f in dataclasses.fields(config_cls):
                if f.name not in seen:
                    seen.add(f.name)
                    options.append(_field_option(f, config_cls.TITLE))
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def pipeline_options(command: Callable) -> Callable:
    """An option per run parameter (`--backbone`, `--fine-tune-epochs`, ...), grouped by step."""
    return config_options(*PIPELINE_CONFIGS)(command)


def pop_pipeline_arguments(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The run parameters from (and removed from) click's keyword arguments."""
    return {name: kwargs.pop(name) for name in pipeline_fields() if name in kwargs}


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """`a,b` or repeated options -> `("a", "b")` (blanks dropped)."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def parse_pairs(values: Sequence[str], option: str) -> tuple[tuple[str, str], ...]:
    """`KEY=VALUE` strings -> pairs.

    Raises:
        click.UsageError: naming `option` and the bad value.
    """
    pairs = []
    for value in values:
        key, equals, rest = value.partition("=")
        if not equals or not key or not rest:
            raise click.UsageError(f"{option} {value!r}: use KEY=VALUE")
        pairs.append((key, rest))
    return tuple(pairs)


def _cluster_option(f: dataclasses.Field) -> Callable:
    meta = f.metadata
    name = meta.get("flag", flag(f.name))
    common = {"cls": GroupedOption, "group": CLUSTER_TITLE, "help": meta["help"]}
    if f.type is bool:
        return click.option(name, f.name, is_flag=True, default=f.default, **common)
    if get_args(f.type):  # a tuple: repeatable
        return click.option(name, f.name, multiple=True, metavar=meta.get("metavar"), **common)
    return click.option(
        name,
        f.name,
        type=f.type,
        default=f.default,
        show_default=bool(f.default),
        envvar=meta.get("envvar"),
        **common,
    )


def _cluster_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(ClusterSettings) if f.metadata.get("cli", True)]


def cluster_help(name: str) -> str:
    """The help of a `ClusterSettings` field (for a local option of the same meaning)."""
    return next(f.metadata["help"] for f in dataclasses.fields(ClusterSettings) if f.name == name)


def cluster_options(command: Callable) -> Callable:
    """The compile-time Kubernetes options of compile, submit and schedule."""
    for f in reversed(_cluster_fields()):
        command = _cluster_option(f)(command)
    return command


def pop_cluster_settings(kwargs: dict[str, Any]) -> ClusterSettings:
    """ClusterSettings from (and removed from) click's keyword arguments.

    Raises:
        click.UsageError: a malformed `KEY=VALUE` or toleration.
    """
    values = {}
    for f in _cluster_fields():
        value = kwargs.pop(f.name)
        if f.type == tuple[Toleration, ...]:
            try:
                value = tuple(Toleration.parse(text) for text in value)
            except ValueError as err:
                raise click.UsageError(str(err)) from err
        elif f.type == tuple[str, ...]:
            value = split_list(value)
        elif get_args(f.type):
            value = parse_pairs(value, f.metadata.get("flag", flag(f.name)))
        values[f.name] = value
    return ClusterSettings(**values)
