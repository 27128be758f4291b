"""Finding models on the Hub: ``zoo search``, ``zoo_core.search`` and the card in ``zoo info hf://``.

The real huggingface_hub client talks to ``tests/hubserver.py`` on 127.0.0.1, in this process:
huggingface_hub reads its environment once, at import, so each test points its constants
(endpoint, cache, token file, offline flag) at the test server and a private cache instead.
Commands run in-process through click's CliRunner and zoo's own ``main`` (exit codes and the
``zoo: error:`` lines included); one real ``zoo`` process checks the exit status and that
searching never imports torch.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

import zoo_core
from tests.conftest import run_zoo
from zoo_core.cli import main
from zoo_core.errors import HubError, UsageError
from zoo_core.hub.card_data import CardError, card_summary, parse_card, read_tags
from zoo_core.plugins.registry import reset_registry
from zoo_core.untrusted import clean_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import HubServer

ZOO_MODELS = ["zoo/cnn-digits", "zoo/rnn-demo", "ann/linear"]
WEIGHTS = {
    "tag": "digits",
    "task": "image-classification",
    "dataset": {"name": "scikit-learn digits"},
    "metrics": [{"name": "accuracy", "value": 0.75, "split": "test"}],
    "labels": [f"digit {i}" for i in range(10)],
    "license": "MIT",
}
JSON_FIELDS = {
    "repo_id",
    "source",
    "architecture",
    "plugin",
    "qualified_name",
    "installed",
    "plugin_status",
    "install",
    "downloads",
    "likes",
    "last_modified",
    "license",
    "tags",
}


@dataclass
class Hub:
    url: str
    root: Path

    def set_counts(self, repo: str, **counts: int) -> None:
        """Downloads and likes, which the test server reads from the repository's repo.json."""
        meta_path = self.root / "models" / repo / "repo.json"
        meta = json.loads(meta_path.read_text())
        meta.update(counts)
        meta_path.write_text(json.dumps(meta))

    def set_listing(self, fault: dict[str, Any] | None) -> None:
        """Make the whole listing hostile (the server's root faults.json), or honest again."""
        path = self.root / "faults.json"
        if fault is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(json.dumps({"listing": fault}))


def point_client_at(monkeypatch: pytest.MonkeyPatch, url: str, home: Path) -> None:
    """The in-process huggingface_hub client: this server, a private cache, no token, online."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def upload_card(url: str, repo: str, card: str) -> None:
    """A repository holding only a README.md, committed with the plain huggingface_hub client."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=url, token=False)
    api.create_repo(repo, exist_ok=True)
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Three models pushed by zoo (two authors, three plugins) and one repository that is not."""
    tmp = tmp_path_factory.mktemp("search")
    server = HubServer(tmp / "repos")
    url = server.start()
    try:
        with pytest.MonkeyPatch.context() as mp:
            point_client_at(mp, url, tmp / "home")
            cnn = zoo_core.create_model("simple_cnn", in_channels=1, image_size=8, channels=4)
            models = [
                zoo_core.save_model(cnn, tmp / "cnn", weights=WEIGHTS),
                zoo_core.save_model(zoo_core.create_model("simple_rnn", seed=0), tmp / "rnn"),
                zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp / "lr"),
            ]
            # Pushed in this order, a few ms apart: "updated" sorts them the other way round.
            for directory, repo in zip(models, ZOO_MODELS, strict=True):
                zoo_core.push_to_hub(directory, repo)
            # Not zoo's, though it names a zoo architecture and plugin among its tags.
            upload_card(
                url,
                "zoo/not-zoo",
                "---\nlibrary_name: transformers\ntags: [simple_cnn, zoo-cnn]\n---\n# Not zoo\n",
            )
        found = Hub(url, tmp / "repos")
        for repo, downloads, likes in [
            ("zoo/cnn-digits", 50, 1),
            ("zoo/rnn-demo", 10, 7),
            ("ann/linear", 30, 0),
            ("zoo/not-zoo", 1000, 100),
        ]:
            found.set_counts(repo, downloads=downloads, likes=likes)
        yield found
    finally:
        server.stop()


@pytest.fixture
def client(hub: Hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point this test's client at the shared server; returns its private HF cache."""
    point_client_at(monkeypatch, hub.url, tmp_path / "home")
    return tmp_path / "home" / "hub"


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _zoo(args: tuple[str, ...]) -> None:
    main(list(args))  # the console script's own error handling and exit codes


def zoo(*args: str) -> Result:
    """Run ``zoo ARGS...`` in this process, stdout and stderr apart."""
    return CliRunner().invoke(_zoo, list(args), catch_exceptions=False)


def found(*args: str) -> list[dict[str, Any]]:
    result = zoo("search", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def ids(*args: str) -> list[str]:
    return [r["repo_id"] for r in found(*args)]


def assert_clean_error(result: Result, *words: str) -> None:
    """Exit 1, one ``zoo: error:`` line and a hint, nothing raw from the server."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("zoo: error: "), result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr
    assert all(clean_text(line, None) == line for line in lines + result.stdout.splitlines())


# -- item 1: zoo search ------------------------------------------------------------------------


def test_search_lists_exactly_the_models_zoo_pushed(client: Path) -> None:
    # Most downloaded first; the busier repository that is not zoo's is left out.
    assert ids() == ["zoo/cnn-digits", "ann/linear", "zoo/rnn-demo"]
    table = zoo("search")
    assert table.exit_code == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "SOURCE",
        "ARCHITECTURE",
        "PLUGIN",
        "INSTALLED",
        "DOWNLOADS",
        "LIKES",
        "UPDATED",
    ]
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    first = ["hf://zoo/cnn-digits", "simple_cnn", "zoo-cnn", "yes", "50", "1", today]
    assert lines[1].split() == first
    assert len(lines) == 4 and "not-zoo" not in table.stdout
    # Nothing was downloaded to find them.
    assert not client.exists()


def test_the_python_api_returns_typed_records(client: Path) -> None:
    results = zoo_core.search(sort="likes")
    assert [r.repo_id for r in results] == ["zoo/rnn-demo", "zoo/cnn-digits", "ann/linear"]
    rnn = results[0]
    assert isinstance(rnn, zoo_core.SearchResult)
    assert (rnn.architecture, rnn.plugin, rnn.qualified_name) == (
        "simple_rnn",
        "zoo-rnn",
        "zoo-rnn:simple_rnn",
    )
    assert (rnn.installed, rnn.plugin_status, rnn.install) == (True, "installed", None)
    assert (rnn.downloads, rnn.likes, rnn.source) == (10, 7, "hf://zoo/rnn-demo")
    assert isinstance(rnn.last_modified, datetime.datetime)
    assert results[1].license == "mit"  # from the card, through the Hub's license: tag
    updated = [r.repo_id for r in zoo_core.search(sort="updated")]
    assert updated == ["ann/linear", "zoo/rnn-demo", "zoo/cnn-digits"]
    assert "search" in zoo_core.__all__ and "SearchResult" in zoo_core.__all__


def test_arch_author_query_and_limit_narrow_the_search(client: Path) -> None:
    assert ids("--arch", "simple_cnn") == ["zoo/cnn-digits"]
    assert ids("--arch", "zoo-rnn:simple_rnn") == ["zoo/rnn-demo"]
    assert ids("--arch", "zoo_RNN:simple_rnn") == ["zoo/rnn-demo"]  # the name as PyPI reads it
    assert ids("--arch", "zoo-cnn:simple_rnn") == []
    assert ids("rnn") == ["zoo/rnn-demo"]
    assert ids("DEMO") == ["zoo/rnn-demo"]  # any case, like the Hub
    assert ids("zoo/") == ["zoo/cnn-digits", "zoo/rnn-demo"]
    assert ids("--author", "ann") == ["ann/linear"]
    assert ids("cnn", "--arch", "simple_cnn", "--author", "zoo") == ["zoo/cnn-digits"]
    assert ids("--limit", "2", "--sort", "likes") == ["zoo/rnn-demo", "zoo/cnn-digits"]
    nothing = zoo("search", "vit")
    assert nothing.exit_code == 0 and nothing.stdout.startswith("no zoo models on http://127.0.0.1")


def test_a_model_whose_plugin_is_disabled_is_found_and_marked(
    client: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "zoo-rnn")
    reset_registry()
    rnn = {r["repo_id"]: r for r in found()}["zoo/rnn-demo"]
    assert (rnn["installed"], rnn["plugin_status"], rnn["install"]) == (False, "disabled", None)
    assert rnn["plugin"] == "zoo-rnn" and rnn["architecture"] == "simple_rnn"
    row = [line for line in zoo("search").stdout.splitlines() if "rnn-demo" in line]
    assert row[0].split()[3:5] == ["no", "(disabled)"]


def test_json_has_every_field_of_a_row(client: Path) -> None:
    result = zoo("search", "--json", "--arch", "simple_cnn")
    (row,) = json.loads(result.stdout)
    assert set(row) == JSON_FIELDS
    assert row["source"] == "hf://zoo/cnn-digits" and row["repo_id"] == "zoo/cnn-digits"
    assert (row["architecture"], row["plugin"], row["qualified_name"]) == (
        "simple_cnn",
        "zoo-cnn",
        "zoo-cnn:simple_cnn",
    )
    assert (row["installed"], row["plugin_status"], row["install"]) == (True, "installed", None)
    assert (row["downloads"], row["likes"], row["license"]) == (50, 1, "mit")
    assert datetime.datetime.fromisoformat(row["last_modified"]).tzinfo is not None
    assert {"zoo", "zoo-arch:simple_cnn", "zoo-plugin:zoo-cnn"} <= set(row["tags"])


def test_a_missing_plugin_gets_the_pip_command_only_for_a_valid_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with HubServer(tmp_path / "repos") as server:
        point_client_at(monkeypatch, server.url, tmp_path / "home")
        card = "---\nlibrary_name: zoo\ntags: [zoo, {tags}]\n---\n"
        upload_card(server.url, "me/vit", card.format(tags="zoo-arch:vit_tiny, zoo-plugin:zoo-vit"))
        upload_card(
            server.url, "me/evil", card.format(tags="'zoo-arch:vit_tiny', 'zoo-plugin:x;rm -rf ~'")
        )
        rows = {r["repo_id"]: r for r in found()}
        table = zoo("search").stdout
    vit, evil = rows["me/vit"], rows["me/evil"]
    assert (vit["installed"], vit["plugin_status"]) == (False, "not-installed")
    assert vit["install"] == "pip install zoo-vit"
    assert "to load the models marked no: pip install zoo-vit" in table
    # A plugin tag that is no distribution name is ignored, never offered to pip.
    assert (evil["plugin"], evil["install"], evil["plugin_status"]) == (None, None, "unknown")
    assert "rm -rf" not in table


def test_malformed_arguments_are_usage_errors(client: Path) -> None:
    for args in (
        ["--arch", "Simple CNN"],
        ["--arch", "zoo cnn:simple_cnn"],
        ["--author", "me/you"],
        ["--limit", "1001"],
        ["a\x1b[2Jb"],
    ):
        result = zoo("search", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert "\x1b" not in result.stderr and "Traceback" not in result.stderr
    assert zoo("search", "--sort", "stars").exit_code == 2
    with pytest.raises(UsageError, match="limit 0"):
        zoo_core.search(limit=0)


# -- item 2: the card in zoo info hf:// -----------------------------------------------------------


def test_info_shows_the_card_metadata_without_fetching_weights(client: Path) -> None:
    result = zoo("info", "hf://zoo/cnn-digits", "--json")
    assert result.exit_code == 0, result.stderr
    card = json.loads(result.stdout)["card"]
    assert card["license"] == "mit" and card["library_name"] == "zoo"
    assert card["labels"] == WEIGHTS["labels"]
    assert card["metrics"] == [
        {
            "name": "accuracy",
            "value": 0.75,
            "split": "test",
            "dataset": "scikit-learn digits",
            "task": "image-classification",
        }
    ]
    human = zoo("info", "hf://zoo/cnn-digits").stdout
    assert "model card (README.md)" in human
    assert "metric      accuracy = 0.75 (test, scikit-learn digits)" in human
    assert "labels      digit 0, digit 1," in human
    fetched = {p.name for p in client.glob("models--*/snapshots/*/*")}
    assert fetched == {"config.json", "README.md"}


def test_a_hostile_card_is_escaped_or_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from huggingface_hub import HfApi

    saved = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "lr")
    with HubServer(tmp_path / "repos") as server:
        point_client_at(monkeypatch, server.url, tmp_path / "home")
        zoo_core.push_to_hub(saved, "bad/card")
        api = HfApi(endpoint=server.url, token=False)
        spoof = '---\nlicense: "mit\\e[2J\\nzoo: error: spoofed"\nlabels: ["\\e]0;x\\a"]\n---\n'
        api.upload_file(
            path_or_fileobj=spoof.encode(), path_in_repo="README.md", repo_id="bad/card"
        )
        shown = zoo("info", "hf://bad/card")
        bomb = "---\na: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n---\n"
        api.upload_file(path_or_fileobj=bomb.encode(), path_in_repo="README.md", repo_id="bad/card")
        skipped = zoo("info", "hf://bad/card", "--json")
        api.upload_file(
            path_or_fileobj=b"# Just a title\n", path_in_repo="README.md", repo_id="bad/card"
        )
        bare = zoo("info", "hf://bad/card")
    assert shown.exit_code == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\nzoo: error: spoofed" not in shown.stdout
    assert "license     mit\\x1b[2J\\nzoo: error: spoofed" in shown.stdout
    assert "labels      \\x1b]0;x\\x07" in shown.stdout
    assert skipped.exit_code == 0, skipped.stderr
    assert "card" not in json.loads(skipped.stdout)
    assert "model card (README.md): no metadata" in bare.stdout
    assert "not showing its README.md metadata: it uses YAML aliases" in skipped.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("---\n- a\n- b\n---\n", "not a mapping"),
        ("---\na: [\n---\n", "not valid YAML"),
        ("---\n" + "a: [" * 40 + "]" * 40 + "\n---\n", "nested"),
        ("---\na: [" + ", ".join(["1"] * 30_000) + "]\n---\n", "values"),
        ("---\nx: " + "y" * (300 * 1024) + "\n---\n", "over"),
        ("---\nx: !!python/object/apply:os.system [echo hi]\n---\n", "not valid YAML"),
    ],
)
def test_card_metadata_is_parsed_within_bounds(text: str, problem: str) -> None:
    with pytest.raises(CardError, match=problem):
        parse_card(text)


def test_card_summary_and_tags_ignore_what_is_malformed() -> None:
    assert parse_card("# no metadata\n") == {}
    summary = card_summary(
        parse_card(
            "---\nlicense: 3\nlabels: {a: 1}\nmodel-index: [{results: [7, {metrics: 1}]}]\n---"
        )
    )
    assert summary["license"] == "3" and summary["labels"] == [] and summary["metrics"] == []
    tags = read_tags(["zoo-arch:a", "zoo-arch:b", "zoo-plugin:Zoo_CNN", "zoo-plugin:x y"])
    assert (tags.architecture, tags.plugin, tags.license) == (None, "zoo-cnn", None)


# -- item 3: offline, unreachable, hostile listings ---------------------------------------------


def test_offline_and_unreachable_are_one_line_errors(
    client: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert_clean_error(zoo("search", "cnn"), "HF_HUB_OFFLINE=1 forbids it")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    assert_clean_error(zoo("search"), "cannot reach the Hub at http://127.0.0.1:9")
    # One try: huggingface_hub's own retries would sleep 23 s.
    assert time.monotonic() - started < 10


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"body": "x" * MB, "repeat": 9}, ["announced", "over the 8388608 bytes allowed"]),
        (
            {
                "body": "[" + '{"id": "a/b"},' * 50_000,
                "repeat": 13,
                "headers": {"Content-Length": None},
            },
            ["sent over the 8388608 bytes allowed"],
        ),
        ({"body": "[{"}, ["sent an answer zoo cannot use"]),
        ({"body": '{"id": "zoo/x", "tags": ["zoo"]}'}, ["sent an answer zoo cannot use"]),
        ({"body": '[{"tags": ["zoo"]}]'}, ["sent an answer zoo cannot use"]),
        ({"body": "[" * 200_000}, ["sent an answer zoo cannot use"]),
        ({"body": '[{"id": "zoo/x\\u001b[31mred", "tags": ["zoo"]}]'}, ["a model's id is"]),
        ({"body": '[{"id": "zoo/x", "tags": ["zoo"], "downloads": "many"}]'}, ["downloads"]),
        ({"body": '[{"id": "zoo/x", "tags": ["zoo"], "likes": -1}]'}, ["likes -1"]),
        ({"body": '[{"id": "zoo/x", "tags": "zoo"}]'}, ["the tags of zoo/x"]),
        ({"body": '[{"id": "zoo/x", "tags": ["zoo", 5]}]'}, ["a tag of zoo/x is not text"]),
        ({"body": '[{"id": "zoo/x", "tags": ["zoo"], "lastModified": 5}]'}, ["cannot use"]),
        ({"body": '[{"id": "zoo/x", "library_name": ["zoo"]}]'}, ["the library of zoo/x"]),
        ({"body": '[{"id": 7, "tags": ["zoo"]}]'}, ["a model's id is '7'"]),
        (
            {"status": 503, "body": "busy\x1b[2J", "headers": {"Retry-After": "3600"}},
            ["is busy or failing: it answered 503"],
        ),
        (
            {"body": "[]", "headers": {"Link": '<{url}/api/models?page=2>; rel="next"'}},
            ["over 20 requests"],
        ),
    ],
)
def test_hostile_listings_are_clean_errors(
    fault: dict[str, Any], words: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with HubServer(tmp_path / "repos") as server:
        point_client_at(monkeypatch, server.url, tmp_path / "home")
        headers = {k: v and v.format(url=server.url) for k, v in fault.get("headers", {}).items()}
        Hub(server.url, tmp_path / "repos").set_listing({**fault, "headers": headers})
        started = time.monotonic()
        result = zoo("search")
        elapsed = time.monotonic() - started
        with pytest.raises(HubError):
            zoo_core.search()
    assert_clean_error(result, *words)
    assert elapsed < 10  # no retries, no sleeping on Retry-After


def test_control_characters_in_tags_never_reach_the_terminal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = {
        "id": "zoo/x",
        "tags": ["zoo", "zoo-arch:\x1b[2J", "zoo-plugin:zoo\nevil", "license:\x1b]0;pwned\x07"],
        "downloads": 3,
    }
    with HubServer(tmp_path / "repos") as server:
        point_client_at(monkeypatch, server.url, tmp_path / "home")
        Hub(server.url, tmp_path / "repos").set_listing({"body": json.dumps([entry])})
        table = zoo("search")
        listed = found()
    assert table.exit_code == 0, table.stderr
    assert all(clean_text(line, None) == line for line in table.stdout.splitlines())
    (row,) = listed
    assert (row["architecture"], row["plugin"], row["plugin_status"]) == (None, None, "unknown")
    assert row["license"] == "\\x1b]0;pwned\\x07"
    assert table.stdout.splitlines()[1].split()[:4] == ["hf://zoo/x", "?", "?", "?"]


_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "zoo",
            "zoo/x",
            "zoo-arch:simple_cnn",
            "zoo-plugin:zoo-cnn",
            "zoo-arch:\x1b[2J",
            "license:\u202eevil",
            "zoo: error: spoofed\nsecond",
            "2024-01-01T00:00:00.000Z",
            "a" * 300,
        ]
    ),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_entry = st.fixed_dictionaries(
    {"id": st.one_of(st.just("zoo/x"), _json)},
    optional={
        key: st.one_of(_json, st.lists(_text, max_size=5))
        for key in ("tags", "downloads", "likes", "lastModified", "library_name", "cardData")
    },
)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A server whose whole listing the fuzz test rewrites, example after example."""
    root = tmp_path_factory.mktemp("fuzz-listing")
    with HubServer(root / "repos") as server:
        yield Hub(server.url, root / "repos")


@settings(max_examples=60, deadline=None, derandomize=True)
@given(listing=st.one_of(st.lists(_entry, max_size=4), _json))
def test_any_listing_gives_results_or_a_clean_error(fuzz_hub: Hub, listing: Any) -> None:
    with pytest.MonkeyPatch.context() as mp:
        point_client_at(mp, fuzz_hub.url, fuzz_hub.root / "home")
        fuzz_hub.set_listing({"body": json.dumps(listing)})
        try:
            results = zoo_core.search()
        except HubError as err:
            assert clean_text(err.message, None) == err.message
            return
    for r in results:
        shown = [r.repo_id, r.architecture, r.plugin, r.license, *r.tags]
        assert all(clean_text(x, None) == x for x in shown if x is not None)
        assert r.downloads is None or isinstance(r.downloads, int)


# -- item 4: the test server's listing ----------------------------------------------------------


def test_the_test_server_lists_models_like_the_hub(hub: Hub, client: Path) -> None:
    import urllib.request

    def listing(query: str) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{hub.url}/api/models?{query}", timeout=10) as answer:
            return json.loads(answer.read())

    everything = listing("")
    assert {m["id"] for m in everything} == {*ZOO_MODELS, "zoo/not-zoo"}
    # Without expand, the Hub's default fields: no lastModified, no card data.
    assert "lastModified" not in everything[0] and "cardData" not in everything[0]
    cnn = listing("filter=zoo&filter=zoo-arch:simple_cnn&expand=tags&expand=lastModified")
    assert [set(m) for m in cnn] == [{"_id", "id", "tags", "lastModified"}]
    assert "license:mit" in cnn[0]["tags"]
    assert [m["id"] for m in listing("filter=zoo&sort=downloads&direction=1")] == [
        "zoo/rnn-demo",
        "ann/linear",
        "zoo/cnn-digits",
    ]
    assert [m["id"] for m in listing("filter=zoo&sort=likes&limit=1")] == ["zoo/rnn-demo"]
    assert [m["id"] for m in listing("search=LINEAR&author=ann")] == ["ann/linear"]
    card = listing("filter=transformers&cardData=true")[0]["cardData"]
    assert card == {"library_name": "transformers", "tags": ["simple_cnn", "zoo-cnn"]}


# -- one real process -----------------------------------------------------------------------


def test_the_zoo_command_exits_1_without_importing_torch(tmp_path: Path) -> None:
    # Nothing listens on port 9: the whole client stack runs, and fails on connecting.
    result = run_zoo(
        "search",
        "--arch",
        "simple_rnn",
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HOME=str(tmp_path / "home"),
        HF_HUB_OFFLINE="0",
        PYTHONPROFILEIMPORTTIME="1",
    )
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time:")
    ]
    said = [line for line in lines if not line.startswith("import time:")]
    assert said == [
        "zoo: error: cannot reach the Hub at http://127.0.0.1:9 for the model search: "
        "[Errno 111] Connection refused",
        "  check the network and HF_ENDPOINT, then run the command again",
    ]
    assert "zoo_core.hub.search" in imported and "torch" not in imported
