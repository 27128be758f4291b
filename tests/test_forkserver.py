"""The suite's way of running ``zoo``: a fork of a warm interpreter must look like a new process.

tests/forkserver.py runs most of the suite's ``zoo`` commands; these tests hold it to
what the real console script does, so a test that passes through it would pass through
``zoo`` itself.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_python_code, run_zoo, run_zoo_process
from zoo_core.cli import cli


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--json"],
        ["--version"],
        ["load"],  # a usage error: exit 2, the message on stderr
        ["check", "no_such_model"],  # a zoo error: exit 1
        # Imports torch and builds the model: 3 s in a new interpreter.
        pytest.param(["info", "linear_regression", "--json"], marks=pytest.mark.slow),
        # Every command once through the real console script: it starts, and its usage
        # error is exit 2 with the same words, as in the forks the rest of the suite runs.
        *([name, "--no-such-option"] for name in sorted(cli.commands)),
    ],
    ids=" ".join,
)
def test_a_fork_answers_as_the_console_script_does(args: list[str]) -> None:
    forked, real = run_zoo(*args), run_zoo_process(*args)
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )


def test_a_fork_gets_the_environment_folder_path_and_streams_asked_for(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "only_on_this_path.py").write_text("VALUE = 7\n")
    code = textwrap.dedent(
        """
        import json, os, sys
        import only_on_this_path
        print(json.dumps({
            "cwd": os.getcwd(),
            "var": os.environ.get("ZOO_FORK_PROBE"),
            "module": only_on_this_path.VALUE,
            "argv": sys.argv[1:],
            "ttys": [s.isatty() for s in (sys.stdin, sys.stdout, sys.stderr)],
            "stdin": sys.stdin.read(),
            "hub_imported": "huggingface_hub" in sys.modules,
        }))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """
    )
    result = run_python_code(
        code, "a", "b", cwd=tmp_path, ZOO_FORK_PROBE="yes", PYTHONPATH=str(tmp_path / "lib")
    )
    assert result.returncode == 3
    assert result.stderr == "to stderr\n"
    assert json.loads(result.stdout) == {
        "cwd": str(tmp_path),
        "var": "yes",
        "module": 7,
        "argv": ["a", "b"],
        "ttys": [False, False, False],
        "stdin": "",
        # huggingface_hub reads HF_ENDPOINT and HF_HOME at import: each process imports it.
        "hub_imported": False,
    }


def test_an_uncaught_exception_and_a_hang_end_as_in_a_process() -> None:
    crashed = run_python_code("raise ValueError('boom')")
    assert crashed.returncode == 1
    assert crashed.stderr.startswith("Traceback") and "ValueError: boom" in crashed.stderr
    with pytest.raises(subprocess.TimeoutExpired):
        run_python_code("import time; time.sleep(60)", timeout=1)
    assert run_python_code("print('after')").stdout == "after\n"  # the server goes on


def test_start_up_variables_send_the_run_to_a_new_interpreter() -> None:
    result = run_zoo("--version", PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0
    assert "import time:" in result.stderr  # only a starting interpreter writes these
    flags = run_python_code("import sys; print(sys.flags.optimize)", PYTHONOPTIMIZE="1")
    assert flags.stdout == "1\n"
