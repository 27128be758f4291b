"""No message zoo prints or raises shows a token (issue 19, item 10).

A server that quotes the request's ``Authorization`` header in its error answers
(``tests/hubserver.py``'s ``quote_auth`` fault) must not make ``zoo load``, ``zoo push`` or
``zoo pull`` print ``HF_TOKEN``. Real ``zoo`` commands and the real huggingface_hub client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import run_zoo
from tests.test_hub import TOKEN, USER, Hub, run_python, running_hub
from zoo_core.errors import HubError, WeightsError


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "answer (Authorization=Bearer hf_AbCdEf0123456789xyzXYZ)",
            "answer (Authorization=Bearer ***)",
        ),
        ("{'authorization': 'Bearer eyJhbGciOiJIUzI1NiJ9.x.y'}", "{'authorization': 'Bearer ***'}"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("sent bearer abcdef123456 twice", "sent bearer *** twice"),
        ("token hf_AbCdEf0123456789xyzXYZ leaked", "token hf_*** leaked"),
        ("call hf_hub_download or hf_hub_url", "call hf_hub_download or hf_hub_url"),
    ],
)
def test_anything_shaped_like_a_credential_is_redacted(text: str, shown: str) -> None:
    from zoo_core.untrusted import clean_text, redact

    assert redact(text) == shown
    assert clean_text(text) == shown


def test_the_configured_token_is_redacted_wherever_it_shows(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_TOKEN", "plainsecret-without-shape")
    err = WeightsError(
        "server said plainsecret-without-shape", hint="not plainsecret-without-shape"
    )
    assert "plainsecret" not in str(err) and "plainsecret" not in err.hint
    assert err.message == "server said ***"
    # A token written by `hf auth login` counts too.
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "token"))
    (tmp_path / "token").write_text("filesecret-0000\n")
    assert "filesecret" not in str(HubError("echo: filesecret-0000"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub-redaction"), token=TOKEN) as server:
        yield server


def _quote_auth(hub: Hub, repo: str, routes: list[str]) -> None:
    folder = hub.root / "models" / repo
    (folder / "faults.json").write_text(json.dumps({"quote_auth": routes}))


def _shown(result) -> str:
    return result.stdout + result.stderr


@pytest.mark.slow
def test_load_push_and_pull_never_print_the_token(hub: Hub, tmp_path: Path) -> None:
    env = hub.env(tmp_path / "home")
    directory = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "lr")
    pushed = run_zoo("push", str(directory), f"{USER}/lr", **env)
    assert pushed.returncode == 0, pushed.stderr
    # The server now quotes the Authorization header in every answer about the repository.
    _quote_auth(hub, f"{USER}/lr", ["repo_info", "preupload", "commit", "resolve"])
    for args in (
        ("load", f"hf://{USER}/lr"),
        ("push", str(directory), f"{USER}/lr"),
        ("pull", f"{USER}/lr"),
        ("--debug", "load", f"hf://{USER}/lr"),
    ):
        result = run_zoo(*args, **env)
        assert result.returncode == 1, _shown(result)
        assert TOKEN not in _shown(result), args
        assert "Authorization=Bearer ***" in result.stderr, _shown(result)
    # Python callers: the exception's text is redacted too, even for a token given in code.
    got = run_python(
        {**env, "HF_TOKEN": ""},
        """
        import zoo_core
        try:
            zoo_core.push_to_hub(params["dir"], params["repo"], token=params["token"])
        except zoo_core.ZooError as err:
            result = [type(err).__name__, str(err), repr(err.args)]
        """,
        dir=str(directory),
        repo=f"{USER}/lr",
        token=TOKEN,
    )
    assert got[0] == "HubError"
    assert TOKEN not in json.dumps(got) and "***" in got[1]
