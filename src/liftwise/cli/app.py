"""The Typer application, its one-line error handling and the shared progress bar.

Commands live in sibling modules and stay thin: parse options, call a stage function,
print. A :class:`~liftwise.errors.UserError` or a bad option becomes one line on stderr
and exit status 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from liftwise.errors import UserError

app = typer.Typer(
    name="liftwise",
    help="Decide who gets which intervention for the most net profit, and prove the gain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# click's UsageError, which typer vendors privately; reached through its public subclass.
UsageError: type[Exception] = typer.BadParameter.__bases__[0]

console = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs and pipes
stdout = Console(soft_wrap=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``advance(n)``. Hidden when stderr is not a TTY."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


# Flags whose name is not their library parameter's, per command; every other parameter
# ``some_name`` is the flag ``--some-name`` (see UserError.parameter).
OPTION_NAMES: dict[str, dict[str, str]] = {
    "train": {
        "costs": "--cost",
        "contact": "--cost",
        "redemption": "--redemption-cost",
        "outcomes": "--outcome",
    },
    "ingest": {"outcomes": "--outcome"},
    "simulate": {"arms": "--arm"},
    "serve": {"model_dir": "--model", "decision_config": "--guardrails"},
    # a rollout's name and plan are arguments
    "rollout start": {"plan": "PLAN"},
    **{
        f"rollout {command}": {"name": "NAME"}
        for command in ("status", "pause", "resume", "promote", "abort", "history")
    },
}


def option_for(parameter: str, command: str) -> str:
    """The flag of ``command`` that sets the library parameter ``parameter``."""
    return OPTION_NAMES.get(command, {}).get(parameter, "--" + parameter.replace("_", "-"))


def comma_list(values: list[str] | None) -> list[str] | None:
    """The one parser of list options: ``--x a,b --x c`` and ``--x a --x b --x c`` both
    give ``[a, b, c]`` (blanks dropped); used as the ``callback`` of every list option."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _command_name(argv: list[str]) -> str:
    """The (sub)command path named at the start of ``argv``, e.g. ``experiment analyze``."""
    command: object = typer.main.get_command(app)
    names: list[str] = []
    for token in argv:
        sub = getattr(command, "commands", {}).get(token)
        if sub is None:
            break
        names.append(token)
        command = sub
    return " ".join(names)


def note(message: str) -> None:
    """What a stage did on the user's behalf, as one ``note:`` line on stderr (the
    ``note`` callback stages take)."""
    console.print(f"note: {message}", markup=False, highlight=False)


def fail(message: str) -> None:
    """Print one line to stderr and exit 2 (user error)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, mapping user errors to one line and exit 2."""
    import liftwise.cli.commands  # noqa: F401  (registers commands)

    try:
        # without standalone mode, click returns a command's typer.Exit code instead of exiting
        code = app(args=argv, prog_name="liftwise", standalone_mode=False)
    except UserError as err:
        if err.parameter is not None and err.option is None:
            command = _command_name(sys.argv[1:] if argv is None else argv)
            err.for_option(option_for(err.parameter, command))
        fail(err.one_line())
    except UsageError as err:
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `liftwise`: show the help
            print(ctx.get_help() if ctx is not None else "liftwise --help")
            raise SystemExit(0) from None
        where = f"{ctx.command_path}: " if ctx is not None else ""
        fail(f"{where}{err.format_message()}")  # type: ignore[attr-defined]
    except typer.Abort:
        fail("aborted")
    except typer.Exit as err:
        raise SystemExit(err.exit_code) from None
    except FileNotFoundError as err:
        fail(f"{err.filename}: no such file or directory" if err.filename else str(err))
    except Exception as err:
        from liftwise.registry.store import lost_server

        lost = lost_server(err)
        if lost is None:
            raise
        fail(lost)
    if isinstance(code, int) and code:
        raise SystemExit(code)


def run(argv: list[str]) -> int:
    """Run the CLI in-process and return the exit status a shell would see (for embedding
    and tests)."""
    try:
        main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
