"""The one exception type for problems a user can fix, and the exit statuses they end with."""

import signal
import sys

USER_ERROR_STATUS = 2  # bad input, as click's usage errors


def signal_status(signal_number: int) -> int:
    """The exit status a shell reports for a process stopped by the signal (128 + number)."""
    return 128 + signal_number


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
        raise SystemExit(USER_ERROR_STATUS) from None


class Interrupted(Exception):
    """Work the user stopped; the message says what stays and what to do next.

    The CLI prints `interrupted: <message>` and exits with `status`: 130 after Ctrl-C
    (SIGINT), 143 after SIGTERM (`kill`, `timeout`), as a shell reports a process they
    stopped.
    """

    def __init__(self, message: str, signal_number: int = signal.SIGINT):
        super().__init__(message)
        self.status = signal_status(signal_number)


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
