"""KFP's cron, checked before a schedule is sent: six fields, seconds first.

The KFP API server parses a recurring run's cron with robfig/cron v1.2.0 (`cron.Parse`,
`backend/src/apiserver/server/api_converter.go:2088` at 2.17.0): second, minute, hour,
day of month, month, day of week, each `*`, `?` (days only), a value, a range `a-b`, a step
`*/n` or `a-b/n`, or a comma list of those; or a descriptor (`@daily`, `@every 1h30m`). That
parser also takes five fields (the day of week optional), so a standard five-field cron
would silently run at the wrong times: six are required here.
"""

import re

from kftransfer.components.core.errors import UserError

MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 6, DAYS),
)
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
EXAMPLE = "e.g. '0 0 3 * * *' for 03:00 every day"


def check_cron(cron: str) -> str:
    """Returns `cron` if KFP's parser takes it as meant.

    Raises:
        UserError: naming the bad field and the format.
    """
    text = cron.strip()
    if text in DESCRIPTORS or (
        text.startswith("@every ") and GO_DURATION.match(text[len("@every ") :])
    ):
        return cron
    fields = text.split()
    if len(fields) != 6:
        raise UserError(f"--cron {cron!r}: KFP cron has 6 fields, seconds first, {EXAMPLE}")
    for value, (name, low, high, names) in zip(fields, FIELDS, strict=True):
        for part in value.split(","):
            problem = _part_problem(part, low, high, names, name.startswith("day"))
            if problem:
                raise UserError(
                    f"--cron {cron!r}: the {name} field {value!r} {problem}; fields are second "
                    f"minute hour day-of-month month day-of-week, {EXAMPLE}"
                )
    return cron


def _part_problem(part: str, low: int, high: int, names: dict, question: bool) -> str:
    """Why one comma-separated part of a field is invalid ('' when it is valid)."""
    span, slash, step = part.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return f"has a bad step {step!r}"
    if span == "*" or (span == "?" and question and not slash):
        return ""
    start, dash, end = span.partition("-")
    bounds = [_number(start, names), _number(end, names) if dash else _number(start, names)]
    if None in bounds:
        return f"has {span!r}, not a number from {low} to {high}"
    if not all(low <= b <= high for b in bounds):
        return f"is out of range ({low}-{high})"
    if bounds[0] > bounds[1]:
        return f"has a range {span!r} that runs backwards"
    return ""


def _number(text: str, names: dict) -> int | None:
    if text.isdigit():
        return int(text)
    return names.get(text.upper())
