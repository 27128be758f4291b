"""One resolution per source: every kind of source becomes one Source, opened once.

The directory of a saved model is opened once per load, info, verify and push
(counted on the real snapshot class), and what every command reads comes from
that one object.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import zoo_core
from zoo_core.cli import cli
from zoo_core.errors import ConfigError, ModelNotFoundError, SourceNotFoundError
from zoo_core.sources.resolve import resolve
from zoo_core.storage import snapshot


@pytest.fixture(scope="module")
def saved_cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = zoo_core.create_model("simple_cnn", num_classes=4, seed=0)
    return zoo_core.save_model(model, tmp_path_factory.mktemp("sources") / "cnn")


@pytest.fixture
def opened_directories(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every model directory opened as a snapshot during the test, in order."""
    opened: list[Path] = []
    original = snapshot.OpenedDirectory.__init__

    def counting(self: snapshot.OpenedDirectory, path: object) -> None:
        original(self, path)  # type: ignore[arg-type]
        opened.append(self.path)

    monkeypatch.setattr(snapshot.OpenedDirectory, "__init__", counting)
    return opened


def test_every_kind_of_source_resolves_to_its_architecture_and_config(saved_cnn: Path) -> None:
    lone = saved_cnn / "model.safetensors"
    cases = {
        "simple_rnn": ("name", "simple_rnn"),
        "simple_cnn.digits": ("variant", "simple_cnn"),
        str(saved_cnn): ("directory", "simple_cnn"),
        str(lone): ("file", "simple_cnn"),
    }
    for text, (kind, arch) in cases.items():
        with resolve(text) as found:
            assert (found.kind, found.arch.name) == (kind, arch), text
            assert (found.saved is None) == (kind == "name"), text
    with resolve(saved_cnn) as found:
        assert found.config.num_classes == 4
    with resolve("simple_cnn.digits") as found:
        assert found.display == "simple_cnn.digits"
        assert found.weights_info is not None and found.weights_info["tag"] == "digits"
        assert found.config.image_size == 8  # the recorded config, not the defaults
    with resolve("simple_cnn", pretrained=True) as found:
        assert found.variant is not None and found.variant.spec.tag == "digits"
    with resolve(saved_cnn, arch="simple_cnn", overrides={"num_classes": 4}) as found:
        assert found.arch.name == "simple_cnn" and found.saved is not None


def test_mistakes_are_refused_before_anything_is_read(saved_cnn: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a saved model"):
        resolve(saved_cnn, overrides={"num_classes": 3})
    with pytest.raises(ConfigError, match="a seed has no use"):
        resolve(saved_cnn, seed=1)
    with pytest.raises(SourceNotFoundError, match="no such file or directory"):
        resolve(tmp_path / "missing" / "cnn")
    with pytest.raises(ModelNotFoundError, match="and no file or directory 'cnnn' exists"):
        resolve("cnnn")
    with pytest.raises(ModelNotFoundError) as caught:
        zoo_core.create_model("cnnn")  # a name API: no talk of paths
    assert "file or directory" not in caught.value.message


def test_a_load_opens_the_model_directory_once(saved_cnn: Path, opened_directories) -> None:
    model = zoo_core.load_model(saved_cnn)
    assert opened_directories == [saved_cnn]
    assert model.fc.out_features == 4
    opened_directories.clear()
    variant = zoo_core.load_model("simple_cnn.digits")
    # The pin, every file's hash and the tensors all come from one opened snapshot.
    assert len(opened_directories) == 1
    assert variant.weights_info["tag"] == "digits"


def test_info_and_verify_open_the_directory_once(saved_cnn: Path, opened_directories) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["info", str(saved_cnn), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["config"]["num_classes"] == 4
    assert opened_directories == [saved_cnn]
    opened_directories.clear()
    result = runner.invoke(cli, ["verify", str(saved_cnn), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    assert opened_directories == [saved_cnn]


def test_verify_takes_a_variant_name() -> None:
    result = CliRunner().invoke(cli, ["verify", "simple_cnn.digits", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True and data["problems"] == []


def test_convert_takes_another_tools_safetensors_as_load_does(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = zoo_core.create_model("linear_regression", input_dim=3, seed=0)
    foreign = tmp_path / "mixin"
    foreign.mkdir()
    save_file(model.state_dict(), foreign / "model.safetensors")
    (foreign / "config.json").write_text(json.dumps({"input_dim": 3, "output_dim": 1}))
    result = CliRunner().invoke(
        cli, ["convert", str(foreign), "--arch", "linear_regression", "-o", str(tmp_path / "z")]
    )
    assert result.exit_code == 0, result.output
    converted = zoo_core.load_model(tmp_path / "z")
    direct = zoo_core.load_model(foreign, arch="linear_regression")
    for (name, a), (_, b) in zip(
        converted.state_dict().items(), direct.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert torch.equal(converted.linear.weight, model.linear.weight)
