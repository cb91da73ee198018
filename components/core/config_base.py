"""The base of the parameter dataclasses and the checks they share (see `config`)."""

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import Any, ClassVar

from kftransfer.components.core.errors import ParameterError


def param(default: Any, help: str) -> Any:  # noqa: A002 - mirrors click's keyword
    """A dataclass field with its default and its help text (`metadata["help"]`)."""
    return field(default=default, metadata={"help": help})


def flag(name: str) -> str:
    """The CLI spelling of a parameter: `fine_tune_epochs` -> `--fine-tune-epochs`."""
    return "--" + name.replace("_", "-")


SEED_HELP = "Seed of the split, initialisation, dropout, shuffling and the label-issue folds."


class Config:
    """Base of the parameter dataclasses: coerces numeric types, then validates."""

    TITLE: ClassVar[str] = ""

    def __post_init__(self):
        """Coerces whole floats to int fields (KFP may deliver 3.0 for 3), then validates.

        Raises:
            ParameterError: naming every impossible value at once.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type is int and isinstance(value, float) and value.is_integer():
                object.__setattr__(self, f.name, int(value))
            elif f.type is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
        problems = self.problems()
        if problems:
            raise ParameterError(problems)

    def problems(self) -> list[str]:
        """One message per impossible value, each naming its option; none by default."""
        return []

    @classmethod
    def from_params(cls, params: Mapping[str, Any]):
        """The config from a mapping holding (at least) every field, e.g. a step's `locals()`."""
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})

    @classmethod
    def arguments(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """This class's fields taken from `params`: the keyword arguments of a task call."""
        return {f.name: params[f.name] for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """The field values by name."""
        return dataclasses.asdict(self)


def range_problems(config: Config, names: tuple[str, ...], low, high, closed: bool) -> list:
    """A message for each of `names` outside [low, high] (`closed`) or [low, high)."""
    found = []
    for name in names:
        value = getattr(config, name)
        if not (low <= value <= high if closed else low <= value < high):
            found.append(
                f"{flag(name)} must be in [{low}, {high}{']' if closed else ')'}, got {value}"
            )
    return found


def at_least(config: Config, minimum: int, *names: str) -> list[str]:
    """A message for each of `names` below `minimum`."""
    return [
        f"{flag(name)} must be >= {minimum}, got {getattr(config, name)}"
        for name in names
        if getattr(config, name) < minimum
    ]
