"""The ``zoo`` command line: thin commands over the library.

Each command module registers its commands on :data:`cli`; none imports torch at
module level, so ``zoo --help``, ``zoo list`` and ``zoo plugins`` stay instant.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings

import click

from zoo_core.cli._common import JSON_WRITTEN, echo_error, show_warning
from zoo_core.errors import ZooError
from zoo_core.untrusted import clean_lines, redact
from zoo_core.version import __version__

__all__ = ["cli", "main"]

_state = {"debug": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="zoo-core")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also: ZOO_DEBUG=1).")
def cli(debug: bool) -> None:
    """zoo: a plugin-based model zoo for PyTorch.

    \b
    zoo list                         installed models
    zoo info simple_cnn              config fields, parameters, input shape
    zoo load simple_cnn --set num_classes=5
    zoo save simple_cnn ./cnn --seed 0
    zoo load ./cnn --dtype bfloat16
    zoo list --pretrained            weights variants (NAME.TAG)
    zoo predict simple_cnn.digits digits.npy
    zoo push ./cnn me/cnn-demo       share on the Hugging Face Hub
    zoo load hf://me/cnn-demo
    zoo search cnn                   zoo models others shared on the Hub
    zoo export simple_cnn cnn.pt2    torch.export .pt2 (or .onnx), verified
    zoo bench simple_cnn             eager vs compiled vs exported
    zoo list --supports export       models that declare a capability
    zoo check                        conformance checks of every installed model
    zoo new-plugin zoo-mlp           start a plugin of your own

    Tab completion: eval "$(_ZOO_COMPLETE=bash_source zoo)" (zsh_source, fish_source).
    """
    _state["debug"] = debug or _state["debug"]


# Registering the commands: these modules import only click and zoo_core's light parts.
from zoo_core.cli import deploy, docs, hub, kit, models, plugins, variants, weights  # noqa: E402

for command in (
    *models.COMMANDS,
    *plugins.COMMANDS,
    *hub.COMMANDS,
    *kit.COMMANDS,
    *weights.COMMANDS,
    *docs.COMMANDS,
    *variants.COMMANDS,
    *deploy.COMMANDS,
):
    cli.add_command(command)


def _debug_enabled() -> bool:
    return _state["debug"] or os.environ.get("ZOO_DEBUG", "") not in ("", "0")


def _wants_json(argv: list[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(
    as_json: bool, kind: str, message: str, hint: str | None, code: int, **extra: str
) -> None:
    """Report an error and exit: JSON on stdout with ``--json``, else one or two lines on stderr.

    With ``--json``, stdout holds JSON whatever happens (a script parses it and
    reads the exit status): ``{"error": MESSAGE, "hint": HINT or null, "type":
    CLASS, "exit_code": N}``. A command that already wrote its JSON result (a
    ``zoo check --json`` report that says what failed) keeps stdout to that one
    document; the error line then goes to stderr.
    """
    if as_json and not JSON_WRITTEN:
        hint = redact(hint) if hint else hint
        data = {
            "error": clean_lines(redact(message)),
            "hint": hint,
            "type": kind,
            "exit_code": code,
        }
        click.echo(json.dumps(data, indent=2))
    else:
        echo_error(message, hint, **extra)
    sys.exit(code)


def _print_traceback() -> None:
    """The traceback of the exception being handled (``--debug``), credentials redacted."""
    sys.stderr.write(redact(traceback.format_exc()))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zoo`` console script: runs a command, maps errors to exit codes."""
    as_json = _wants_json(argv)
    JSON_WRITTEN.clear()
    if not sys.stderr.isatty():
        # Hub transfers draw huggingface_hub's progress bars on a terminal only; it reads
        # this at import, which no command has done yet. An explicit setting wins.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.showwarning = show_warning
    try:
        code = cli.main(args=argv, prog_name="zoo", standalone_mode=False)
    except ZooError as err:
        if _debug_enabled():
            _print_traceback()
        _fail(as_json, type(err).__name__, err.message, err.hint, err.exit_code)
    except click.exceptions.ClickException as err:
        if not as_json:
            err.show()
            sys.exit(err.exit_code)
        usage = isinstance(err, click.exceptions.UsageError)
        command = getattr(getattr(err, "ctx", None), "command_path", "zoo")
        hint = f"see '{command} --help'" if usage else None
        kind = "UsageError" if usage else type(err).__name__
        _fail(True, kind, err.format_message(), hint, err.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("zoo: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a word.
        sys.stderr.close()
        sys.exit(0)
    except Exception as err:
        if _debug_enabled():
            _print_traceback()
            sys.exit(1)
        _fail(
            as_json,
            "InternalError",
            f"{type(err).__name__}: {err}",
            "rerun with --debug to see the traceback, and please report it",
            1,
            prefix="zoo: internal error: ",
        )
    sys.exit(code if isinstance(code, int) else 0)
