"""A small config cannot make zoo build for minutes (issue 19, item 9).

The bundled plugins refuse absurd sizes in their configs; the kit warns about a config
that does not (``bounded-sizes``, which tries the value on the config alone, never
building it); and every build on ``meta`` (``zoo info``, ``hf://`` descriptions, loads)
stops once it makes more tensors than ``ZOO_MAX_TENSORS`` or runs longer than
``ZOO_MAX_BUILD_SECONDS``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import run_zoo
from tests.test_hub import running_hub, upload_files
from zoo_core.errors import ConfigError, ZooError
from zoo_core.models.build import Architecture
from zoo_core.testing import run_checks

BUNDLED = ["linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"]
ABSURD = 2**40  # what the kit's bounded-sizes check tries (zoo_core.kit.checks_limits)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_configs_refuse_absurd_sizes(name: str) -> None:
    arch = Architecture.named(name)
    base = arch.config()
    sizes = [f.name for f in dataclasses.fields(base) if type(getattr(base, f.name)) is int]
    assert sizes
    for field in sizes:
        with pytest.raises(ConfigError, match=f"{field}.*at most|weights"):
            arch.config({field: ABSURD}, base=base)


def _edited(tmp_path: Path, name: str, **config: int) -> Path:
    directory = zoo_core.save_model(zoo_core.create_model(name), tmp_path / name)
    record = json.loads((directory / "config.json").read_text())
    record["config"].update(config)
    (directory / "config.json").write_text(json.dumps(record))
    return directory


def test_a_hostile_config_json_is_refused_before_anything_is_built(
    tmp_path: Path, zoo_main
) -> None:
    directory = _edited(tmp_path, "tiny_transformer", num_layers=200_000)
    assert (directory / "config.json").stat().st_size < 2_000
    started = time.monotonic()
    code, _, err = zoo_main("info", str(directory))
    assert code == 1, err
    assert "num_layers must be at most 1,024" in err
    with pytest.raises(ZooError, match="num_layers must be at most"):
        zoo_core.load_model(directory)
    assert time.monotonic() - started < 30


def test_an_unbounded_plugin_is_stopped_by_the_tensor_budget(
    tmp_path: Path, fixture_plugins, zoo_main, monkeypatch
) -> None:
    fixture_plugins("unbounded_plugin")
    monkeypatch.setenv("ZOO_MAX_TENSORS", "1000")
    started = time.monotonic()
    code, _, err = zoo_main("info", "unbounded_stack", "--set", "layers=100000000")
    assert code == 1, err
    assert "building unbounded_stack from its config made over 1000 tensors (ZOO_MAX_TENSORS)" in (
        err
    )
    assert "Traceback" not in err
    # The same config in a saved model's config.json: refused naming the file.
    monkeypatch.delenv("ZOO_MAX_TENSORS")
    directory = _edited(tmp_path, "unbounded_stack", layers=100_000_000)
    monkeypatch.setenv("ZOO_MAX_TENSORS", "1000")
    with pytest.raises(ZooError, match=r"unbounded_stack: building unbounded_stack .* over 1000"):
        zoo_core.load_model(directory)
    assert time.monotonic() - started < 60


def test_an_unbounded_plugin_is_stopped_by_the_time_budget(fixture_plugins, monkeypatch) -> None:
    fixture_plugins("unbounded_plugin")
    monkeypatch.setenv("ZOO_MAX_BUILD_SECONDS", "0.5")
    arch = Architecture.named("unbounded_stack")
    started = time.monotonic()
    with pytest.raises(ZooError, match=r"took over 0.5 s \(ZOO_MAX_BUILD_SECONDS\)"):
        arch.build_meta(arch.config({"layers": 100_000_000}))
    assert time.monotonic() - started < 10


def test_the_kit_flags_a_config_that_bounds_no_size(fixture_plugins) -> None:
    fixture_plugins("unbounded_plugin")
    (result,) = run_checks("unbounded_stack", only=["bounded-sizes"]).results
    assert result.status == "warn"
    assert "layers, width" in result.message and f"{ABSURD:,}" in result.message
    (bundled,) = run_checks("tiny_transformer", only=["bounded-sizes"]).results
    assert bundled.status == "pass"


@pytest.mark.slow
def test_zoo_info_hf_refuses_a_hostile_config_after_downloading_only_it(tmp_path: Path) -> None:
    directory = _edited(tmp_path, "tiny_transformer", num_layers=200_000)
    home = tmp_path / "home"
    files = {n: directory / n for n in ("config.json", "model.safetensors")}
    with running_hub(tmp_path / "hub", token=None) as hub:
        upload_files(hub, home, "zoo/deep", files)
        result = run_zoo("info", "hf://zoo/deep", **hub.env(home, token=None))
    assert result.returncode == 1, result.stderr
    assert "num_layers must be at most 1,024" in result.stderr
    assert "model.safetensors" not in {p.name for p in (home / "hub").rglob("*")}
