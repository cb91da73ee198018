"""The one exception type for problems a user can fix."""


class UserError(Exception):
    """Bad input or setup that the user can fix: a one-line message naming both.

    The CLI prints `error: <message>` and exits with status 2; a pipeline step
    fails with the same message in its log.
    """


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
