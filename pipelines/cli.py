"""`kftransfer`: split, run, compile, submit and schedule transfer-learning pipelines."""

import errno
import logging
import os
import select
import signal
import sys
import traceback

import click

from kftransfer.components import __version__
from kftransfer.components.core.errors import (
    USER_ERROR_STATUS,
    Interrupted,
    UserError,
    signal_status,
)
from kftransfer.components.core.progress import setup_logging
from kftransfer.pipelines.commands_cluster import compile_command, doctor, submit
from kftransfer.pipelines.commands_local import demo, run, split
from kftransfer.pipelines.commands_predict import predict
from kftransfer.pipelines.commands_schedule import schedule
from kftransfer.pipelines.native_log import tensorflow_logs_dropped
from kftransfer.pipelines.terminal import printable

EXIT_BROKEN_PIPE = signal_status(signal.SIGPIPE)  # as a shell reports `yes | head`'s `yes`
EXIT_INTERRUPTED = signal_status(signal.SIGINT)  # Ctrl-C


# What to do about a file the system refused to read or write, by errno.
OS_FIXES = {
    errno.ENOSPC: "free space there, or give another location",
    errno.EDQUOT: "free space there, or give another location",
    errno.EACCES: "give a location you may write to, or fix its permissions",
    errno.EPERM: "give a location you may write to, or fix its permissions",
    errno.EROFS: "give a location on a writable file system",
}


class _Cli(click.Group):
    """Turns bad input into one `error:` line and exit status 2, with no traceback.

    Bad input: a UserError, a bad option value, or a file the system refuses to write or
    read (a full disk, a read-only folder); `-v` adds the traceback of the last. Output
    piped into a reader that stops early (`| head`) ends the command quietly instead
    (exit 141), and Ctrl-C with one `interrupted:` line saying what stays (exit 130).
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"error: {printable(str(err))}", err=True)
            ctx.exit(USER_ERROR_STATUS)
        except Interrupted as err:
            click.echo(f"interrupted: {printable(str(err))}", err=True)
            ctx.exit(err.status)
        except KeyboardInterrupt:  # a command with nothing to say about what stays
            click.echo(f"interrupted: kftransfer {ctx.invoked_subcommand} stopped", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except OSError as err:
            if isinstance(err, BrokenPipeError) and _stdout_reader_gone():
                _stop_writing_stdout()
                ctx.exit(EXIT_BROKEN_PIPE)
            if (ctx.obj or {}).get("verbose"):
                traceback.print_exc()
            where = f" {err.filename}" if err.filename else ""
            fix = OS_FIXES.get(err.errno, "check the path (-v shows where it happened)")
            click.echo(printable(f"error: {err.strerror or err}:{where}: {fix}"), err=True)
            ctx.exit(USER_ERROR_STATUS)
        except click.UsageError as err:
            command = err.ctx.command_path if err.ctx else "kftransfer"
            message = printable(err.format_message())
            click.echo(f"error: {message} (see `{command} --help`)", err=True)
            ctx.exit(USER_ERROR_STATUS)


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (and not another broken pipe)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or stdout is no file
        return False


def _stop_writing_stdout() -> None:
    """Quietly stops output whose reader has gone (`kftransfer predict DEST dir/ | head`).

    Points stdout at /dev/null, so the interpreter's last flush of what is still buffered
    cannot fail again on the way out (the recipe of Python's `signal` docs, on SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kftransfer")
@click.option(
    "-v", "--verbose", is_flag=True,
    help="Log debug details, kfp.local's output and TensorFlow's C++ log lines.",
)  # fmt: skip
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Image-classification transfer learning as a Kubeflow Pipelines DAG."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = {"verbose": verbose}
    ctx.with_resource(tensorflow_logs_dropped(enabled=not verbose))


for command in (split, run, demo, predict, compile_command, submit, schedule, doctor):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="kftransfer")
