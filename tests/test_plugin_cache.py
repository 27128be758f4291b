"""The plugin cache: listing from it imports no hook module, and every change is seen.

Plugins here are real: hook modules named in ``ZOO_PLUGINS``, wheels installed
with pip, an editable install; each hook module appends a line to a marker
file when it is imported, so a test counts imports. Every command is a ``zoo``
process of its own (see tests/forkserver.py) with its own ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, run_zoo
from zoo_core.plugins.cache import CACHE_FILE, PluginCache, cache_path, module_files

HOOK = """\
from zoo_core import ModelSpec, hookimpl

with open({marker!r}, "a") as f:
    f.write("imported\\n")

ZOO_PLUGIN_API = 1


@hookimpl
def zoo_register_models():
    {body}
"""


def settle(*paths: Path) -> None:
    """Wait until the files' last change is old enough for the plugin cache to trust it.

    The cache stores nothing from a file changed within 50 ms (2 s where the file system
    keeps whole seconds) before the import that read it: an edit within the same tick
    could go unseen. A new interpreter took longer than that to start; the suite's
    ``zoo`` runs are forks of a warm one (tests/forkserver.py) and start at once.
    """
    for path in paths:
        changed = path.stat().st_ctime_ns
        margin = 2_000_000_000 if changed % 1_000_000_000 == 0 else 50_000_000
        while time.time_ns() <= changed + margin:
            time.sleep(0.01)


def write_hook(path: Path, marker: Path, models: list[str], *, body: str | None = None) -> Path:
    """A hook module at ``path`` registering ``models`` (targets in the conflicting fixture)."""
    specs = ", ".join(
        f"ModelSpec({m!r}, 'conflicting_model:OtherCNN', 'summary of {m}')" for m in models
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HOOK.format(marker=str(marker), body=body or f"return [{specs}]"))
    settle(path)
    return path


def imports(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


class Env:
    """``zoo`` runs sharing one cache directory and one PYTHONPATH."""

    def __init__(self, tmp_path: Path, plugins: str = "", *paths: Path) -> None:
        self.cache = tmp_path / "cache"
        self.env = {
            "XDG_CACHE_HOME": str(self.cache),
            "PYTHONPATH": os.pathsep.join(map(str, (*paths, FIXTURES))),
            "ZOO_PLUGINS": plugins,
        }

    @property
    def file(self) -> Path:
        return self.cache / "zoo" / CACHE_FILE

    def __call__(self, *args: str, ok: bool = True, **extra: str) -> subprocess.CompletedProcess:
        result = run_zoo(*args, **{**self.env, **extra})
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    def models(self, **extra: str) -> dict[str, str]:
        return {m["name"]: m["summary"] for m in json.loads(self("list", "--json", **extra).stdout)}


def test_a_warm_list_imports_no_hook_module(tmp_path) -> None:
    marker = tmp_path / "imported"
    write_hook(tmp_path / "mods" / "warm_hook.py", marker, ["warm_a", "warm_b"])
    zoo = Env(tmp_path, "warm_hook", tmp_path / "mods")
    cold = zoo("list", "--json").stdout
    assert imports(marker) == 1
    assert {"warm_a", "warm_b", "simple_cnn"} <= {m["name"] for m in json.loads(cold)}
    assert zoo.file.is_file()
    assert zoo("list", "--json").stdout == cold
    # Neither this hook module nor the installed plugins' nor the metadata scan: nothing.
    profiled = zoo("list", PYTHONPROFILEIMPORTTIME="1")
    imported = {line.rsplit("|", 1)[-1].strip() for line in profiled.stderr.splitlines()}
    assert "warm_hook" not in imported
    assert not {"zoo_cnn.plugin", "zoo_rnn.plugin", "importlib.metadata"} & imported
    assert "zoo_core.plugins.cache" in imported and "torch" not in imported
    assert imports(marker) == 1
    # What zoo reports is what it reports without the cache, weights variants included
    # (the bundled plugins publish them through a second hook, cached alongside).
    assert zoo("plugins", "--json").stdout == zoo("plugins", "--json", ZOO_NO_CACHE="1").stdout
    pretrained = zoo("list", "--pretrained", "--json", PYTHONPROFILEIMPORTTIME="1")
    imported = {line.rsplit("|", 1)[-1].strip() for line in pretrained.stderr.splitlines()}
    assert not {"warm_hook", "zoo_cnn.plugin", "importlib.metadata"} & imported
    variants = json.loads(pretrained.stdout)
    assert variants and variants == json.loads(
        zoo("list", "--pretrained", "--json", ZOO_NO_CACHE="1").stdout
    )
    assert zoo("list", "--json", ZOO_NO_CACHE="1").stdout == cold
    assert imports(marker) == 4  # each uncached run imports it


def test_touching_or_editing_a_hook_module_or_its_package_is_seen(tmp_path) -> None:
    marker = tmp_path / "imported"
    package = tmp_path / "mods" / "edited_pkg"
    (package).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    hook = write_hook(package / "plugin.py", marker, ["edited_a"])
    zoo = Env(tmp_path, "edited_pkg.plugin", tmp_path / "mods")
    before = zoo.models()
    zoo.models()
    assert imports(marker) == 1
    st = hook.stat()
    os.utime(hook, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touch: same bytes
    assert zoo.models() == before
    assert imports(marker) == 2
    write_hook(hook, marker, ["edited_a", "edited_b"])  # an edit: a new model
    assert set(zoo.models()) == set(before) | {"edited_b"}
    assert imports(marker) == 3
    (package / "__init__.py").write_text("# the package changed\n")
    settle(package / "__init__.py")
    zoo.models()
    assert imports(marker) == 4
    zoo.models()
    assert imports(marker) == 4
    hook.unlink()  # gone: reported broken, as without a cache
    broken = zoo("list")
    assert "zoo plugin edited_pkg.plugin is broken (ModuleNotFoundError" in broken.stderr
    assert "edited_b" not in broken.stdout


def test_broken_plugins_are_read_every_time_and_reported_as_without_the_cache(tmp_path) -> None:
    marker = tmp_path / "imported"
    hook = write_hook(tmp_path / "mods" / "flaky_hook.py", marker, ["flaky_a"])
    plugins = "flaky_hook,broken_import,broken_hook,broken_garbage,conflicting"
    zoo = Env(tmp_path, plugins, tmp_path / "mods")
    uncached = zoo("plugins", "--json", ZOO_NO_CACHE="1").stdout
    listed = zoo("list", ZOO_NO_CACHE="1")
    for _ in range(2):  # cold, then warm
        assert zoo("plugins", "--json").stdout == uncached
        again = zoo("list")
        assert (again.stdout, again.stderr) == (listed.stdout, listed.stderr)
    assert again.stderr.count("zoo: warning:") == 3
    assert imports(marker) == 2 + 1  # twice without the cache, once with it
    # A plugin that breaks is reported broken; once fixed it is ok again.
    write_hook(hook, marker, [], body="raise RuntimeError('hook broke')")
    status = {p["name"]: p for p in json.loads(zoo("plugins", "--json").stdout)}
    assert (status["flaky_hook"]["status"], status["flaky_hook"]["error"]) == (
        "broken",
        "RuntimeError: hook broke",
    )
    zoo("plugins")
    assert imports(marker) == 5  # a broken result is never cached
    write_hook(hook, marker, ["flaky_a", "flaky_b"])
    assert {"flaky_a", "flaky_b"} <= set(zoo.models())


def test_a_broken_weights_hook_is_reported_every_time(tmp_path) -> None:
    marker = tmp_path / "imported"
    hook = write_hook(tmp_path / "mods" / "weights_hook.py", marker, ["weighty"])
    hook.write_text(
        hook.read_text()
        + "\n\n@hookimpl\ndef zoo_register_weights():\n    raise RuntimeError('no weights today')\n"
    )
    zoo = Env(tmp_path, "weights_hook", tmp_path / "mods")
    uncached = zoo("plugins", ZOO_NO_CACHE="1")
    for _ in range(2):
        again = zoo("plugins")
        assert (again.stdout, again.stderr) == (uncached.stdout, uncached.stderr)
    assert "weights hook is broken (RuntimeError: no weights today)" in again.stdout + again.stderr
    assert "weighty" in zoo("list").stdout
    assert imports(marker) == 4  # never cached while its weights hook fails


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"format": 1}', b"\xff\xfe", b""])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, content) -> None:
    marker = tmp_path / "imported"
    write_hook(tmp_path / "mods" / "corrupt_hook.py", marker, ["corrupt_a"])
    zoo = Env(tmp_path, "corrupt_hook", tmp_path / "mods")
    expected = zoo.models()
    zoo.file.write_bytes(content)
    assert zoo.models() == expected
    assert imports(marker) == 2
    assert json.loads(zoo.file.read_text())["format"] == 1
    assert zoo.models() == expected
    assert imports(marker) == 2


def test_zoo_no_cache_reads_every_plugin_and_writes_nothing(tmp_path) -> None:
    marker = tmp_path / "imported"
    write_hook(tmp_path / "mods" / "nocache_hook.py", marker, ["nocache_a"])
    zoo = Env(tmp_path, "nocache_hook", tmp_path / "mods")
    for _ in range(2):
        assert "nocache_a" in zoo.models(ZOO_NO_CACHE="1")
    assert imports(marker) == 2
    assert not zoo.cache.exists()


@pytest.mark.slow
def test_zoo_load_resolves_names_from_the_cache(tmp_path) -> None:
    marker = tmp_path / "imported"
    write_hook(tmp_path / "mods" / "load_hook.py", marker, ["load_me"])
    zoo = Env(tmp_path, "load_hook", tmp_path / "mods")
    zoo("list")
    loaded = json.loads(zoo("load", "load_me", "--json").stdout)
    assert loaded["output_shape"] == [1, 2]
    assert imports(marker) == 1  # the name came from the cache; only the model class was imported


@pytest.mark.slow
def test_concurrent_zoo_processes_share_one_cache(tmp_path) -> None:
    markers, names = [], []
    for i in range(5):
        markers.append(tmp_path / f"imported{i}")
        write_hook(tmp_path / "mods" / f"racer{i}.py", markers[-1], [f"racer_{i}"])
        names.append(f"racer{i}")
    zoo = Env(tmp_path, "", tmp_path / "mods")
    env = {**os.environ, **zoo.env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "zoo_core", "list", "--json"],
            env={**env, "ZOO_PLUGINS": name},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert f"racer_{i}" in {m["name"] for m in json.loads(out)}
    assert json.loads(zoo.file.read_text())["format"] == 1
    assert [p.name for p in zoo.file.parent.iterdir()] == [CACHE_FILE]  # no temporary left
    # Whatever each writer's merge kept, every process still sees its own plugin.
    for i, name in enumerate(names):
        assert f"racer_{i}" in zoo.models(ZOO_PLUGINS=name)


WRITER = """
import sys
from zoo_core.plugins.cache import PluginCache
for i in range(int(sys.argv[2])):
    cache = PluginCache.open("stress")
    cache.store(("writer", sys.argv[1], i), "json", {"hooks": {"n": [i] * 200}})
    cache.save()
"""


def test_concurrent_writers_never_leave_a_partial_file(tmp_path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(w), "25"], env=env) for w in range(4)
    ]
    path = tmp_path / "zoo" / CACHE_FILE
    reads = 0
    while any(w.poll() is None for w in writers):
        if path.exists():
            data = json.loads(path.read_text())  # never half-written
            assert data["format"] == 1
            reads += 1
    assert all(w.wait() == 0 for w in writers)
    data = json.loads(path.read_text())
    assert len(data["plugins"]) >= 25  # merges keep other writers' entries, races lose a few
    assert sorted(p.name for p in path.parent.iterdir()) == [CACHE_FILE]
    assert reads > 0


def test_module_files_finds_sources_by_path_without_importing(tmp_path, monkeypatch) -> None:
    root = tmp_path / "paths"
    (root / "pkg_a" / "sub").mkdir(parents=True)
    (root / "pkg_a" / "__init__.py").write_text("raise SystemExit('never imported')\n")
    (root / "pkg_a" / "sub" / "__init__.py").write_text("")
    (root / "pkg_a" / "sub" / "hooks.py").write_text("")
    (root / "nspace" / "inner").mkdir(parents=True)  # a namespace package: no __init__
    (root / "nspace" / "inner" / "hooks.py").write_text("")
    (root / "single.py").write_text("")
    (root / "native.py").write_text("")
    (root / ("native" + EXTENSION_SUFFIXES[0])).touch()
    (root / "bare.pyc").write_bytes(b"")
    monkeypatch.syspath_prepend(str(root))
    assert module_files("pkg_a.sub.hooks") == [
        str(root / "pkg_a" / "__init__.py"),
        str(root / "pkg_a" / "sub" / "__init__.py"),
        str(root / "pkg_a" / "sub" / "hooks.py"),
    ]
    assert module_files("nspace.inner.hooks") == [str(root / "nspace" / "inner" / "hooks.py")]
    assert module_files("single") == [str(root / "single.py")]
    # What would load is not plain source (an extension first, bytecode alone): not cacheable.
    assert module_files("native") is None
    assert module_files("bare") is None
    assert module_files("pkg_a.missing") is None
    assert module_files("no_such_top_level") is None
    assert not {"pkg_a", "pkg_a.sub", "nspace", "single"} & set(sys.modules)


def test_module_files_follows_editable_installs_without_importing() -> None:
    code = (
        "import sys; from zoo_core.plugins.cache import module_files; "
        "print(module_files('zoo_cnn.plugin')); print('zoo_cnn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    files, imported = out.stdout.splitlines()
    package = Path(__file__).parents[1] / "plugins" / "zoo-cnn" / "zoo_cnn"
    assert files == str([str(package / "__init__.py"), str(package / "plugin.py")])
    assert imported == "False"


def test_the_cache_is_disabled_by_zoo_no_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert PluginCache.open("salt") is not None
    monkeypatch.setenv("ZOO_NO_CACHE", "1")
    assert PluginCache.open("salt") is None
    monkeypatch.setenv("ZOO_NO_CACHE", "0")
    assert PluginCache.open("salt") is not None
    # A relative XDG_CACHE_HOME is ignored, as the XDG spec says: ~/.cache it is.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_path() == tmp_path / "home" / ".cache" / "zoo" / CACHE_FILE


# Installed plugins: wheels and an editable install, with pip --------------------------------


def _wheel(out: Path, version: str, models: list[str], marker: Path) -> Path:
    files = {
        "zoo_cached/__init__.py": b"",
        "zoo_cached/plugin.py": textwrap.dedent(
            f"""\
            from zoo_core import ModelSpec, hookimpl
            with open({str(marker)!r}, "a") as f:
                f.write("imported\\n")
            @hookimpl
            def zoo_register_models():
                return [ModelSpec(m, "conflicting_model:OtherCNN") for m in {models!r}]
            """
        ).encode(),
        f"zoo_cached-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: zoo-cached\nVersion: {version}\n".encode()
        ),
        f"zoo_cached-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"zoo_cached-{version}.dist-info/entry_points.txt": b"[zoo]\ncached = zoo_cached.plugin\n",
    }
    record = f"zoo_cached-{version}.dist-info/RECORD"
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    path = out / f"zoo_cached-{version}-py3-none-any.whl"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(record, "\n".join([*lines, f"{record},,"]) + "\n")
    return path


def _pip(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *map(str, args)],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.slow
def test_installs_upgrades_and_uninstalls_are_seen(tmp_path) -> None:
    marker, site = tmp_path / "imported", tmp_path / "site"
    _pip("install", "--no-deps", "--no-index", "--target", site,
         _wheel(tmp_path / "w", "0.1.0", ["cached_one"], marker))  # fmt: skip
    zoo = Env(tmp_path, "", site)
    assert "cached_one" in zoo.models()
    assert "cached_one" in zoo.models()
    assert imports(marker) == 1
    plugins = {p["name"]: p for p in json.loads(zoo("plugins", "--json").stdout)}
    assert plugins["zoo-cached"]["version"] == "0.1.0"
    _pip("install", "--no-deps", "--no-index", "--upgrade", "--target", site,
         _wheel(tmp_path / "w", "0.2.0", ["cached_one", "cached_two"], marker))  # fmt: skip
    assert {"cached_one", "cached_two"} <= set(zoo.models())
    plugins = {p["name"]: p for p in json.loads(zoo("plugins", "--json").stdout)}
    assert plugins["zoo-cached"]["version"] == "0.2.0"
    assert imports(marker) == 2
    # Uninstall: what `pip uninstall` does (pip will not uninstall outside its environment;
    # `pip install --upgrade --target` also leaves the old dist-info behind).
    for path in site.glob("zoo_cached*"):
        shutil.rmtree(path)
    listed = zoo("list")
    assert "cached_" not in listed.stdout and listed.stderr == ""
    assert "zoo-cached" not in zoo("plugins").stdout


@pytest.mark.slow
def test_an_edit_of_an_editable_install_is_seen(tmp_path) -> None:
    marker, site, project = tmp_path / "imported", tmp_path / "site", tmp_path / "zoo-ed"
    (project / "zoo_ed").mkdir(parents=True)
    (project / "zoo_ed" / "__init__.py").write_text("")
    hook = write_hook(project / "zoo_ed" / "plugin.py", marker, ["ed_one"])
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "zoo-ed"\nversion = "0.1.0"\n'
        '[project.entry-points.zoo]\ned = "zoo_ed.plugin"\n'
    )
    _pip("install", "--no-deps", "--no-build-isolation", "--target", site, "-e", project)
    assert not (site / "zoo_ed").exists()  # the source stays in the project: a finder maps it
    # A site directory (unlike PYTHONPATH) runs the .pth file that installs the finder.
    launcher = f"import site, sys; site.addsitedir({str(site)!r}); from zoo_core.cli import main; "
    zoo_env = Env(tmp_path, "")

    def models() -> set[str]:
        cmd = [sys.executable, "-c", launcher + "sys.argv[0] = 'zoo'; main()", "list", "--json"]
        out = subprocess.run(
            cmd, env={**os.environ, **zoo_env.env}, capture_output=True, text=True, check=True
        )
        return {m["name"] for m in json.loads(out.stdout)}

    assert "ed_one" in models()
    assert "ed_one" in models()
    assert imports(marker) == 1
    write_hook(hook, marker, ["ed_one", "ed_two"])
    assert {"ed_one", "ed_two"} <= models()
    assert imports(marker) == 2


def test_a_hook_module_changed_around_its_import_is_not_stored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = tmp_path / "racy_hook.py"
    hook.write_text("VERSION = 1\n")
    time.sleep(0.2)  # settled before the lookup below
    cache = PluginCache.open("salt")
    assert cache.lookup(("racy",), "racy_hook") is None
    importlib.import_module("racy_hook")
    hook.write_text("VERSION = 2\n")  # during the run: the import may have read either version
    cache.store(("racy",), "racy_hook", {"hooks": {"v": 1}})
    monkeypatch.delitem(sys.modules, "racy_hook")
    cache.save()
    assert PluginCache.open("salt").lookup(("racy",), "racy_hook") is None
    time.sleep(0.2)
    cache = PluginCache.open("salt")
    assert cache.lookup(("racy",), "racy_hook") is None
    importlib.import_module("racy_hook")
    cache.store(("racy",), "racy_hook", {"hooks": {"v": 2}})
    monkeypatch.delitem(sys.modules, "racy_hook")
    cache.save()
    assert PluginCache.open("salt").lookup(("racy",), "racy_hook")["hooks"] == {"v": 2}
