"""`kftransfer`: split, run, compile, submit and schedule transfer-learning pipelines."""

import logging
import os

import click

from kftransfer.components import __version__
from kftransfer.components.core.errors import UserError
from kftransfer.components.core.progress import setup_logging
from kftransfer.pipelines.commands_cluster import compile_command, doctor, schedule, submit
from kftransfer.pipelines.commands_local import demo, predict, run, split

EXIT_USER_ERROR = 2


class _Cli(click.Group):
    """Turns a UserError, or a bad option value, into one `error:` line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except click.UsageError as err:
            command = err.ctx.command_path if err.ctx else "kftransfer"
            click.echo(f"error: {err.format_message()} (see `{command} --help`)", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kftransfer")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details and kfp.local's output.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Image-classification transfer learning as a Kubeflow Pipelines DAG."""
    setup_logging(logging.DEBUG if verbose else logging.INFO)
    ctx.obj = {"verbose": verbose}


for command in (split, run, demo, predict, compile_command, submit, schedule, doctor):
    cli.add_command(command)


def main() -> None:
    """Console entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cli(prog_name="kftransfer")
