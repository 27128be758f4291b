"""save_model / load_model through the public API, on real safetensors files."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import zoo_core
from zoo_core.errors import PluginError, SourceNotFoundError, UsageError, WeightsError

CASES = [
    ("linear_regression", {}),
    ("linear_regression", {"input_dim": 7, "output_dim": 3}),
    ("simple_cnn", {}),
    ("simple_cnn", {"in_channels": 1, "image_size": 16, "channels": 4, "num_classes": 2}),
    ("simple_rnn", {}),
    ("simple_rnn", {"cell": "lstm", "num_layers": 2, "hidden_size": 8}),
    ("simple_rnn", {"cell": "gru"}),
]


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(("name", "overrides"), CASES)
def test_round_trip_is_bit_exact(name, overrides, tmp_path) -> None:
    model = zoo_core.create_model(name, seed=0, **overrides)
    path = zoo_core.save_model(model, tmp_path / "m")
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    loaded = zoo_core.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert not loaded.training
    _same_tensors(model, loaded)
    x = model.example_input(3)
    with torch.no_grad():
        assert torch.equal(zoo_core.call_model(model.eval(), x), zoo_core.call_model(loaded, x))


def test_config_and_header_metadata_describe_the_model(tmp_path) -> None:
    model = zoo_core.create_model("simple_cnn", num_classes=5)
    path = zoo_core.save_model(model, tmp_path / "cnn")
    record = json.loads((path / "config.json").read_text())
    assert record["architecture"] == "simple_cnn"
    assert record["plugin"] == "zoo-cnn"
    assert record["plugin_version"] == "0.1.0"
    assert record["zoo_core_version"] == zoo_core.__version__
    assert record["config"]["num_classes"] == 5
    with safe_open(path / "model.safetensors", framework="pt") as f:
        meta = f.metadata()
    assert meta["format"] == "pt"
    assert meta["zoo.architecture"] == "simple_cnn"
    assert json.loads(meta["zoo.config"])["num_classes"] == 5


def test_a_lone_safetensors_file_loads_by_itself(tmp_path) -> None:
    model = zoo_core.create_model("simple_rnn", cell="gru", seed=3)
    path = zoo_core.save_model(model, tmp_path / "rnn")
    lone = tmp_path / "weights.safetensors"
    os.rename(path / "model.safetensors", lone)
    loaded = zoo_core.load_model(lone)
    assert loaded.config.cell == "gru"
    _same_tensors(model, loaded)


def test_load_applies_dtype_and_device(tmp_path) -> None:
    model = zoo_core.create_model("simple_cnn", seed=0)
    path = zoo_core.save_model(model, tmp_path / "m")
    loaded = zoo_core.load_model(path, device="cpu", dtype="bfloat16")
    assert {t.dtype for t in loaded.state_dict().values()} == {torch.bfloat16}
    assert torch.equal(loaded.fc.weight, model.fc.weight.to(torch.bfloat16))
    loaded = zoo_core.load_model(str(path), device=torch.device("cpu"), dtype=torch.float64)
    assert loaded.fc.weight.dtype == torch.float64
    with pytest.raises(UsageError, match="unknown dtype"):
        zoo_core.load_model(path, dtype="float8")


def test_loading_builds_on_meta_without_paying_for_init(tmp_path, monkeypatch) -> None:
    path = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "m")
    devices = []
    original = torch.nn.Linear.reset_parameters

    def spy(self):
        devices.append(self.weight.device.type)
        original(self)

    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", spy)
    model = zoo_core.load_model(path)
    assert devices == ["meta"]
    assert model.linear.weight.device.type == "cpu"
    assert model.linear.weight.requires_grad


def test_non_persistent_buffers_are_computed(fixture_plugins, tmp_path) -> None:
    fixture_plugins("buffered")
    model = zoo_core.create_model("buffered", seed=0)
    loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / "b"))
    assert torch.equal(loaded.scale, torch.tensor([1.0, 2.0]))
    x = model.example_input(2)
    assert torch.equal(model(x), loaded(x))


def test_files_respect_the_umask(tmp_path) -> None:
    old = os.umask(0o027)
    try:
        path = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o750
    for name in ("config.json", "model.safetensors"):
        assert stat.S_IMODE(os.stat(path / name).st_mode) == 0o640


def test_saving_replaces_a_model_and_leaves_nothing_behind(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression", input_dim=2), target)
    zoo_core.save_model(zoo_core.create_model("linear_regression", input_dim=5), target)
    assert zoo_core.load_model(target).config.input_dim == 5
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_saving_refuses_a_directory_that_is_not_a_model(tmp_path) -> None:
    target = tmp_path / "notes"
    target.mkdir()
    (target / "thesis.txt").write_text("years of work")
    with pytest.raises(WeightsError, match="not a zoo model directory"):
        zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    assert os.listdir(target) == ["thesis.txt"]
    assert sorted(os.listdir(tmp_path)) == ["notes"]


def test_leftovers_of_an_interrupted_save_are_recovered(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression", input_dim=4), target)
    # A crash between "old aside" and "new into place": only the aside copy remains.
    os.rename(target, tmp_path / ".m.zoo-old-deadbeef")
    (tmp_path / ".m.zoo-tmp-cafe").mkdir()
    assert zoo_core.load_model(target).config.input_dim == 4
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_save_refuses_unregistered_classes_and_plain_modules(fixture_plugins, tmp_path) -> None:
    fixture_plugins("conflicting")
    from conflicting_model import Unregistered

    with pytest.raises(PluginError, match="not registered"):
        zoo_core.save_model(Unregistered(), tmp_path / "u")
    with pytest.raises(UsageError, match="cannot tell which model a Linear is"):
        zoo_core.save_model(torch.nn.Linear(1, 1), tmp_path / "l")
    assert not (tmp_path / "u").exists()


def test_key_and_shape_mismatches_name_the_keys(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    weights = path / "model.safetensors"
    with safe_open(weights, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors["extra.weight"] = tensors.pop("conv1.bias")
    tensors["fc.weight"] = torch.zeros(10, 3)
    save_file(tensors, weights, metadata=meta)
    with pytest.raises(WeightsError) as info:
        zoo_core.load_model(path)
    text = str(info.value)
    assert "missing conv1.bias" in text
    assert "unexpected extra.weight" in text
    assert "fc.weight [10, 3] (model expects [10, 3136])" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a readable safetensors file"),
        (b'\x08\x00\x00\x00\x00\x00\x00\x00{"a":1}', "not a readable safetensors file"),
        (b"PK\x03\x04 this is a zip, as torch.save writes", "not a readable safetensors file"),
    ],
)
def test_files_that_are_not_safetensors(content, message, tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        zoo_core.load_model(bad)


def test_truncated_weights(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="not a readable safetensors file") as info:
        zoo_core.load_model(path)
    assert "truncated or corrupt" in info.value.hint


def test_a_plain_safetensors_file_without_zoo_metadata(tmp_path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, plain)
    with pytest.raises(WeightsError, match="carries no zoo metadata"):
        zoo_core.load_model(plain)


def test_missing_paths_and_missing_plugins(tmp_path) -> None:
    with pytest.raises(SourceNotFoundError, match="no such file or directory"):
        zoo_core.load_model(tmp_path / "nope")
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    record = json.loads((path / "config.json").read_text())
    record["plugin"], record["architecture"] = "zoo-vit", "tiny_vit"
    (path / "config.json").write_text(json.dumps(record))
    with pytest.raises(zoo_core.PluginNotInstalledError) as info:
        zoo_core.load_model(path)
    assert info.value.distribution == "zoo-vit"
    assert "pip install 'zoo-vit>=0.1.0'" in info.value.hint


def test_garbage_config_json_is_a_weights_error(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    record = json.loads((path / "config.json").read_text())
    record["config"]["num_classes"] = "ten"
    (path / "config.json").write_text(json.dumps(record))
    with pytest.raises(WeightsError, match="'num_classes' expects int"):
        zoo_core.load_model(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="not valid JSON"):
        zoo_core.load_model(path)


def test_import_zoo_core_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, zoo_core; zoo_core.list_models(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
