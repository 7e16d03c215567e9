"""The `rlkd-lite` command: a thin Typer layer over the library (no logic lives here).

Each sub-command lives in its own module and registers itself on `app`; heavy libraries
(torch, transformers, unsloth) are imported inside the command bodies so that `--help` and
`score` with the light decomposers and judges start fast.
"""
from __future__ import annotations

import typer

app = typer.Typer(
    name="rlkd-lite",
    help="RLKD on one GPU: distil a teacher's reasoning structure into a small student with GRPO.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _show_version(value: bool) -> None:
    if value:
        from rlkd_lite import __version__

        typer.echo(f"rlkd-lite {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_show_version,
                                      is_eager=True, help="Print the version and exit.")) -> None:
    """RLKD on one GPU: distil a teacher's reasoning structure into a small student with GRPO."""


from rlkd_lite.cli import _commands  # noqa: E402,F401  (registers the sub-commands)
