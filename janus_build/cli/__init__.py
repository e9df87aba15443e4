"""The ``janus`` command line: a thin Typer layer over the library.

Each stage's commands live in a module of this package; they parse options into the stage's
frozen config dataclass, call the library, and render results with Rich. Heavy libraries are
imported inside the commands, so ``janus --help`` starts fast.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from janus_build import __version__

app = typer.Typer(
    name="janus",
    help="Build JANuS-style image-classification datasets on a data budget and train robust classifiers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"janus-build {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."),
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    from janus_build.cli.common import rich_log_handler
    from janus_build.log import setup_logging

    setup_logging(verbose, rich_log_handler())


def _register() -> None:
    # Each module adds its commands to ``app`` on import; they import no heavy library at top level.
    import importlib
    import pkgutil

    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{module}")


_register()


def main(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point: run the app; every failure becomes one line and an exit code.

    See :mod:`janus_build.cli.boundary` for the lines and codes (usage 2, user errors their
    ``exit_code``, environment and internal errors 1 with a log file, Ctrl-C 130).
    """
    from janus_build.cli.boundary import run

    sys.exit(run(app, argv))
