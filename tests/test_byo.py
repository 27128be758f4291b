"""Bring your own nn.Module (issue 10 item 1): the seed's classes as they are, and families."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo_core
from tests.conftest import FIXTURES, run_zoo
from zoo_core.testing import run_checks

# shared/ lies beside the checkout (in development and in CI alike).
SEED_TEXT = Path(__file__).resolve().parents[2] / "shared" / "seed" / "define-model-class.md"
SEED = {
    "seed_linear": ("LinearRegression", {"input_dim": 1, "output_dim": 1}),
    "seed_cnn": ("SimpleCNN", {}),
    "seed_rnn": ("SimpleRNN", {"input_size": 10, "hidden_size": 20, "output_size": 5}),
}


@pytest.fixture
def seed(fixture_plugins):
    fixture_plugins("seed_plugin")
    import seed_models

    return seed_models


def test_the_seed_classes_are_copied_verbatim(seed) -> None:
    if not SEED_TEXT.exists():
        pytest.skip("the seed text is not on this machine")
    text = SEED_TEXT.read_text(encoding="utf-8")
    for cls_name, _ in SEED.values():
        source = inspect.getsource(getattr(seed, cls_name))
        assert source in text, f"{cls_name} differs from the seed"


def test_each_seed_class_registers_in_at_most_three_lines() -> None:
    tree = ast.parse((FIXTURES / "seed_plugin.py").read_text(encoding="utf-8"))
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "ModelSpec"
    ]
    assert len(calls) == 3
    assert all(c.end_lineno - c.lineno + 1 <= 3 for c in calls)


@pytest.mark.parametrize("name", sorted(SEED))
def test_seed_class_builds_saves_and_loads_bit_exact(seed, tmp_path, name) -> None:
    cls_name, kwargs = SEED[name]
    cls = getattr(seed, cls_name)
    model = zoo_core.create_model(name, seed=0)
    assert type(model) is cls
    # Parameter names stay the class's own: weights saved by plain PyTorch fit.
    assert list(model.state_dict()) == list(cls(**kwargs).state_dict())
    path = zoo_core.save_model(model, tmp_path / name)
    record = json.loads((path / "config.json").read_text())
    assert record["config"] == kwargs
    loaded = zoo_core.load_model(path)
    assert type(loaded) is cls
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    from zoo_core.models.build import Architecture

    arch = Architecture.named(name)
    x = arch.example_input(model, 2)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_seed_config_round_trips_and_set_rebuilds_the_same_class(seed, tmp_path) -> None:
    model = zoo_core.create_model("seed_rnn", hidden_size=7, seed=1)
    assert model.rnn.hidden_size == 7 and model.fc.in_features == 7
    loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / "rnn"))
    assert loaded.rnn.hidden_size == 7
    with pytest.raises(zoo_core.ConfigError, match="'hidden_size' expects int"):
        zoo_core.create_model("seed_rnn", hidden_size="wide")
    info = run_zoo("info", "seed_rnn", "--set", "hidden_size=7", "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["config"] == {"input_size": 10, "hidden_size": 7, "output_size": 5}
    assert data["input_shape"] == [1, 20, 10]
    assert {f["name"]: f["type"] for f in data["fields"]} == {
        "input_size": "int",
        "hidden_size": "int",
        "output_size": "int",
    }


def test_seed_wrong_input_shape_is_a_zoo_error(seed) -> None:
    model = zoo_core.create_model("seed_linear", input_dim=3)
    with pytest.raises(zoo_core.InputShapeError, match=r"shape \(batch, 3\)"):
        model(torch.ones(2, 4))


@pytest.mark.slow
def test_zoo_check_passes_the_seed_plugin(seed) -> None:
    result = run_zoo("check", "--plugin", "seed_plugin", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    models = {m["model"]: m for m in json.loads(result.stdout)["models"]}
    assert sorted(models) == sorted(SEED)
    assert all(m["passed"] for m in models.values())


@pytest.mark.slow
def test_seed_models_push_and_pull(seed, tmp_path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hubserver import client_env, start_server_subprocess, stop_server_subprocess

    url, process = start_server_subprocess(tmp_path / "hub", token="hf_byo_test", user="zoo")
    try:
        env = client_env(url, tmp_path / "home", "hf_byo_test")
        for name in SEED:
            model = zoo_core.create_model(name, seed=0)
            path = zoo_core.save_model(model, tmp_path / name)
            pushed = run_zoo("push", str(path), f"zoo/{name}", **env)
            assert pushed.returncode == 0, pushed.stderr
            code = (
                "import hashlib, json, zoo_core\n"
                f"m = zoo_core.load_model('hf://zoo/{name}')\n"
                "print(json.dumps({k: hashlib.sha256(t.contiguous().view(-1).numpy().tobytes())"
                ".hexdigest() for k, t in m.state_dict().items()}))\n"
            )
            pulled = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                env={**__import__("os").environ, **env},
                timeout=120,
            )
            assert pulled.returncode == 0, pulled.stderr
            expected = {
                k: hashlib.sha256(t.contiguous().view(-1).numpy().tobytes()).hexdigest()
                for k, t in model.state_dict().items()
            }
            assert json.loads(pulled.stdout.splitlines()[-1]) == expected
    finally:
        stop_server_subprocess(process)


# --- families ------------------------------------------------------------------------

FAMILY_FILE = FIXTURES / "family_torch_nn.json"
FAMILY_OPTIONS = {
    "names": ["Linear", "LayerNorm", "ReLU", "GELU", "SiLU", "Tanh", "Sigmoid", "ELU",
              "LeakyReLU", "Softplus", "Hardswish", "Mish", "Softsign"],
    "prefix": "nn_",
    "example_input": {"Linear": ("batch", "in_features"),
                      "LayerNorm": ("batch", "normalized_shape"), "*": ("batch", 8)},
    "defaults": {"Linear": {"in_features": 8, "out_features": 4},
                 "LayerNorm": {"normalized_shape": 8}},
    "tags": ("torch.nn",),
}  # fmt: skip


def test_the_written_family_is_what_the_library_gives_now(tmp_path) -> None:
    from zoo_core.models.families import load_family, write_family

    written = write_family(tmp_path / "family.json", "torch.nn", **FAMILY_OPTIONS)
    assert load_family(FAMILY_FILE) == written
    assert len(written) >= 10


def test_a_family_of_existing_classes_builds_and_round_trips(fixture_plugins, tmp_path) -> None:
    fixture_plugins("family_plugin")
    names = zoo_core.list_models("nn_*")
    assert len(names) >= 10
    from zoo_core.models.build import Architecture

    for name in names:
        model = zoo_core.create_model(name, seed=0)
        assert type(model).__module__.startswith("torch.nn")
        arch = Architecture.named(name)
        out = model(arch.example_input(model, 2))
        assert out.shape[0] == 2
        loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / name))
        assert list(loaded.state_dict()) == list(model.state_dict())
    assert zoo_core.create_model("nn_linear", out_features=6).weight.shape == (6, 8)


def test_family_listing_imports_no_torch(fixture_plugins) -> None:
    fixture_plugins("family_plugin")
    code = (
        "import sys, zoo_core\n"
        "names = zoo_core.list_models('nn_*')\n"
        "print(len(names), 'torch' in sys.modules)\n"
    )
    import os

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["13", "False"]
    listed = run_zoo("list", "nn_*")
    assert listed.returncode == 0 and "nn_leaky_relu" in listed.stdout


@pytest.mark.slow
def test_kit_passes_family_members(fixture_plugins) -> None:
    fixture_plugins("family_plugin")
    for name in ("nn_linear", "nn_layer_norm", "nn_gelu"):
        report = run_checks(name)
        assert report.passed, report.as_dict()
