"""A model is exactly the files its ``config.json`` records (issue 19, items 6 and 15).

A ``model.safetensors`` dropped beside recorded shards is never what a load reads, a push
uploads or an ``hf://`` load fetches; a re-save keeps a weights file the record does not
name, and warns when it must replace one. Real directories, real plugins (variants are
published by a real hook module), the real huggingface_hub client against the test Hub.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import zoo_core
from tests.conftest import run_zoo
from tests.test_hub import Hub, run_python, running_hub
from tests.test_variants import Publisher, shipped_spec
from zoo_core.errors import WeightsError


def _sharded_linear(directory: Path, value: float = 1.0) -> Path:
    model = zoo_core.create_model("linear_regression", input_dim=64, output_dim=64, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    saved = zoo_core.save_model(model, directory, max_shard_size=16_500)
    assert (saved / "model.safetensors.index.json").exists()
    return saved


def _plant(directory: Path, value: float = 666.0) -> None:
    """A complete, well-formed model.safetensors of the same shapes, with other values."""
    tensors = {
        "linear.weight": torch.full((64, 64), value),
        "linear.bias": torch.full((64,), value),
    }
    save_file(tensors, directory / "model.safetensors")


def test_a_planted_single_file_never_replaces_recorded_shards(tmp_path: Path, zoo_main) -> None:
    saved = _sharded_linear(tmp_path / "lr")
    _plant(saved)
    with pytest.warns(UserWarning, match="ignoring 'model.safetensors'"):
        model = zoo_core.load_model(saved)
    assert float(model.linear.weight.detach()[0, 0]) == 1.0
    # The command line says so too.
    code, out, err = zoo_main("load", str(saved), "--json")
    assert code == 0 and "ignoring 'model.safetensors'" in err
    assert all("model.safetensors.index" in f or "-of-" in f for f in json.loads(out)["files"])


def test_an_index_naming_an_unrecorded_shard_is_refused(tmp_path: Path) -> None:
    saved = _sharded_linear(tmp_path / "lr")
    index = json.loads((saved / "model.safetensors.index.json").read_text())
    _plant(saved)
    index["weight_map"] = dict.fromkeys(index["weight_map"], "model.safetensors")
    (saved / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="does not record"):
        zoo_core.load_model(saved)


def test_a_pinned_sharded_variant_loads_its_recorded_shards(tmp_path: Path, monkeypatch) -> None:
    publisher = Publisher(tmp_path / "site", monkeypatch)
    model = zoo_core.create_model("linear_regression", input_dim=64, output_dim=64, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    pkg = publisher.root / "planted_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").touch()
    path = zoo_core.save_model(
        model, pkg / "weights" / "ones", max_shard_size=16_500, weights={"tag": "ones"}
    )
    publisher.hook("planted_hook", shipped_spec("linear_regression", path))
    _plant(path)
    with pytest.warns(UserWarning):
        loaded = zoo_core.load_model("linear_regression.ones")
    assert float(loaded.linear.weight.detach()[0, 0]) == 1.0


def test_a_resave_keeps_an_unrecorded_weights_file_and_warns_when_it_replaces_one(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "cnn"
    model = zoo_core.create_model("linear_regression", seed=0)
    zoo_core.save_model(model, directory)
    mine = directory / "ema.safetensors"
    save_file({"x": torch.ones(3)}, mine)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a re-save that keeps everything says nothing
        zoo_core.save_model(model, directory)
    assert mine.read_bytes() and (directory / "ema.safetensors").exists()
    # The new save writes shards; a planted model.safetensors it does not write is kept...
    sharded = _sharded_linear(tmp_path / "lr")
    _plant(sharded)
    with pytest.warns(UserWarning):
        big = zoo_core.load_model(sharded)
    zoo_core.save_model(big, sharded, max_shard_size=16_500)
    assert (sharded / "model.safetensors").exists()
    # ...but a save that writes model.safetensors itself must replace it: it says so.
    with pytest.warns(UserWarning, match=r"replaces model\.safetensors, which .* did not record"):
        zoo_core.save_model(big, sharded)
    record = json.loads((sharded / "config.json").read_text())
    assert set(record["files"]) == {"model.safetensors"}


@pytest.fixture(scope="module")
def open_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub-recorded"), token=None) as server:
        yield server


@pytest.mark.slow
def test_push_uploads_only_recorded_files_and_hf_loads_follow_the_record(
    open_hub: Hub, tmp_path: Path
) -> None:
    saved = _sharded_linear(tmp_path / "lr")
    _plant(saved)
    env = open_hub.env(tmp_path / "home", token=None)
    pushed = run_zoo("push", str(saved), "zoo/planted", **env)
    assert pushed.returncode == 0, pushed.stderr
    files = run_python(
        env,
        "from huggingface_hub import HfApi\n"
        "result = sorted(HfApi().list_repo_files('zoo/planted'))",
    )
    assert "model.safetensors" not in files
    assert "model.safetensors.index.json" in files
    # A repository holding a planted model.safetensors beside its recorded shards (pushed
    # by another client): an hf:// load fetches and reads the recorded shards.
    run_python(
        env,
        """
        from huggingface_hub import CommitOperationAdd, HfApi
        HfApi().create_commit(
            "zoo/planted",
            [CommitOperationAdd("model.safetensors", params["planted"])],
            commit_message="plant",
        )
        result = None
        """,
        planted=str(saved / "model.safetensors"),
    )
    got = run_python(
        env,
        """
        import zoo_core, warnings
        warnings.simplefilter("ignore")
        model = zoo_core.load_model("hf://zoo/planted")
        result = float(model.linear.weight[0, 0])
        """,
    )
    assert got == 1.0
    cached = {p.name for p in (tmp_path / "home" / "hub").glob("models--*/snapshots/*/*")}
    assert "model.safetensors" not in cached
