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
GO_PART = re.compile(r"([0-9]+(\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
GO_DURATION = re.compile(f"({GO_PART.pattern})+$")
GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
DIGITS = re.compile("[0-9]+")
EXAMPLE = "e.g. '0 0 3 * * *' for 03:00 every day"


def check_cron(cron: str) -> str:
    """`cron` as KFP's parser takes it as meant: without the spaces around it, to be sent.

    The parser matches a descriptor only at the first character and whole, so `" @daily"`
    and `"@daily "` would be refused by the server.

    Raises:
        UserError: naming the bad field and the format.
    """
    text = cron.strip()
    if text in DESCRIPTORS:
        return text
    if text.startswith("@every ") and GO_DURATION.match(text[len("@every ") :]):
        if _seconds(text[len("@every ") :]) < 1:  # robfig/cron rounds it up to 1 s
            raise UserError(
                f"--cron {cron!r}: KFP would run it every second (it rounds shorter intervals "
                "up to 1s): give 1s or more, e.g. '@every 24h'"
            )
        return text
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
    return text


def _part_problem(part: str, low: int, high: int, names: dict, question: bool) -> str:
    """Why one comma-separated part of a field is invalid ('' when it is valid)."""
    span, slash, step = part.partition("/")
    if slash and not (DIGITS.fullmatch(step) and int(step) >= 1):
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
    if DIGITS.fullmatch(text):  # 0-9 only, as Go's strconv.Atoi: not '²' or '٣'
        return int(text)
    return names.get(text.upper())


def _seconds(duration: str) -> float:
    """A Go duration's length in seconds (`1h30m` -> 5400)."""
    return sum(
        float(number) * GO_UNIT_SECONDS[unit] for number, _, unit in GO_PART.findall(duration)
    )
