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
                    f"--{flag}/--no-{flag}", default=field.default, show_default=True,
                    help=help_text,
                )  # fmt: skip
            else:
                option = click.option(
                    f"--{flag}", type=field.type, default=field.default, show_default=True,
                    help=help_text,
                )  # fmt: skip
            command = option(command)
        return command

    return decorate


def pop_config(config_cls: type, kwargs: dict[str, Any]) -> Any:
    """Builds `config_cls` from (and removes its fields from) click's keyword arguments."""
    names = {field.name for field in dataclasses.fields(config_cls)}
    return config_cls(**{name: kwargs.pop(name) for name in names if name in kwargs})
