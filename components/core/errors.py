"""The one exception type for problems a user can fix."""

import sys


class UserError(Exception):
    """Bad input or setup that the user can fix: a one-line message naming both.

    The CLI prints `error: <message>` and exits with status 2; a pipeline step
    fails with the same message in its log.
    """


def exit_on_user_error(error: BaseException) -> None:
    """Ends a step that raised a UserError: one `error:` line on stderr, exit status 2.

    Any other exception is left to the caller to re-raise (a traceback: a bug).
    """
    if isinstance(error, UserError):
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


class Interrupted(Exception):
    """Work the user stopped; the message says what stays and what to do next.

    The CLI prints `interrupted: <message>` and exits with `status`: 130 after Ctrl-C,
    143 after SIGTERM (`kill`, `timeout`), as a shell reports a process they stopped.
    """

    def __init__(self, message: str, status: int = 130):
        super().__init__(message)
        self.status = status


class ParameterError(UserError):
    """One or more impossible parameter values; `problems` holds one message per value."""

    def __init__(self, problems: list[str], prefix: str = ""):
        super().__init__(prefix + "; ".join(problems))
        self.problems = problems


class StorageError(UserError):
    """A storage operation failed; the message names the URI."""


class NotFoundError(StorageError):
    """The object, file or bucket does not exist."""


class PreconditionFailed(StorageError):
    """A conditional write found the object changed since it was read."""
