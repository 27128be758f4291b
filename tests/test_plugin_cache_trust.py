"""The plugin cache is trusted only when it is the user's alone (issue 19, items 11 and 12).

The cache decides which models ``zoo list`` shows and where ``NAME.TAG`` weights come
from, without importing any plugin. A cache file or folder that another user owns, or
that others may write, is ignored (and never written), with one warning saying why; so is
anything at the cache path that is not a regular file (a FIFO, a symlink to /dev/zero)
or is too large. Another user is played by ``chown nobody`` (root only; skipped otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import warnings
from pathlib import Path

import pytest

from tests.conftest import ZOO
from zoo_core.plugins.cache import CACHE_FILE
from zoo_core.plugins.registry import ZooPluginWarning, get_registry

NOBODY = 65534
MAX_CACHE_BYTES = 32 * 1024 * 1024  # zoo_core.plugins.cache.MAX_CACHE_BYTES


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "zoo"


def _discover() -> tuple[list[str], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [e.name for e in get_registry(refresh=True).entries]
        get_registry(refresh=True)  # a second discovery in the same process says nothing new
    said = [str(w.message) for w in caught if issubclass(w.category, ZooPluginWarning)]
    return names, [s for s in said if "plugin cache" in s]


def _poison(cache: Path) -> None:
    """Add a model to a plugin's cached record, as another user who can write the file would."""
    data = json.loads(cache.read_text())
    for record in data["plugins"].values():
        specs = record["hooks"]["zoo_register_models"]
        if any(s["name"] == "simple_cnn" for s in specs):
            specs.append({**specs[0], "name": "fake_model", "summary": "planted"})
    cache.write_text(json.dumps(data))


def _warm(cache_home: Path) -> Path:
    names, said = _discover()
    assert "simple_cnn" in names and said == []
    cache = cache_home / CACHE_FILE
    assert cache.is_file()
    assert (cache_home.stat().st_mode & 0o777) == 0o700  # zoo makes its folder the user's alone
    return cache


def test_a_cache_the_user_owns_alone_is_used(cache_home: Path) -> None:
    cache = _warm(cache_home)
    _poison(cache)  # the user's own file: trusted, so what it says is listed
    names, said = _discover()
    assert "fake_model" in names and said == []


@pytest.mark.parametrize(
    "how",
    ["file-owner", "folder-owner", "file-world-writable", "folder-group-writable"],
)
def test_a_cache_others_could_write_is_ignored_and_said_once(cache_home: Path, how: str) -> None:
    cache = _warm(cache_home)
    _poison(cache)
    if how.endswith("owner"):
        if os.geteuid() != 0:
            pytest.skip("playing another user (chown nobody) needs root")
        os.chown(cache if how == "file-owner" else cache_home, NOBODY, NOBODY)
    elif how == "file-world-writable":
        cache.chmod(0o666)
    else:
        cache_home.chmod(0o770)
    before = cache.read_bytes()
    names, said = _discover()
    assert "fake_model" not in names and "simple_cnn" in names
    assert len(said) == 1, said
    assert f"ignoring the plugin cache {cache}" in said[0]
    assert ("owned by uid 65534" if how.endswith("owner") else "writable by") in said[0]
    assert cache.read_bytes() == before  # never written either


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "link-to-own-cache", "huge"])
def test_only_a_bounded_regular_file_is_read(cache_home: Path, kind: str) -> None:
    cache = _warm(cache_home)
    if kind == "fifo":
        cache.unlink()
        os.mkfifo(cache, 0o600)
    elif kind == "dev-zero":
        cache.unlink()
        cache.symlink_to("/dev/zero")
    elif kind == "link-to-own-cache":
        real = cache_home / "elsewhere.json"
        cache.rename(real)
        cache.symlink_to(real)
    else:
        with open(cache, "r+b") as f:
            f.truncate(MAX_CACHE_BYTES + 1)
    # A whole zoo process: a FIFO would block it forever, /dev/zero fill its memory.
    started = time.monotonic()
    listed = subprocess.run(
        [ZOO, "list", "--json"], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert listed.returncode == 0, listed.stderr
    assert "simple_cnn" in {m["name"] for m in json.loads(listed.stdout)}
    reason = {
        "fifo": "it is not a regular file",
        "dev-zero": "it is a symbolic link",
        "link-to-own-cache": "it is a symbolic link",
        "huge": f"(at most {MAX_CACHE_BYTES})",
    }[kind]
    assert listed.stderr.count("ignoring the plugin cache") == 1, listed.stderr
    assert reason in listed.stderr
    assert time.monotonic() - started < 60
