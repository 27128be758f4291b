"""zoo verify / zoo_core.sources.verify: completeness, structure and recorded content hashes."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import zoo_core
from tests.conftest import run_zoo
from zoo_core.sources.verify import Problem, check_file_hashes, verify_directory
from zoo_core.storage.safetensors_io import hash_file


@pytest.fixture
def sharded(tmp_path):
    model = zoo_core.create_model("simple_rnn", cell="gru", hidden_size=64, num_layers=3, seed=0)
    return zoo_core.save_model(model, tmp_path / "m", max_shard_size="40KB")


def _messages(problems: list[Problem]) -> list[str]:
    return [f"{p.where}: {p.message}" for p in problems]


def test_a_fresh_save_verifies_and_records_true_hashes(sharded) -> None:
    assert verify_directory(sharded) == []
    files = json.loads((sharded / "config.json").read_text())["files"]
    for name, entry in files.items():
        assert hash_file(sharded / name).as_dict() == entry
    result = run_zoo("verify", str(sharded))
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stdout


def test_a_flipped_byte_is_found_by_its_hash(sharded) -> None:
    shard = sorted(sharded.glob("model-*.safetensors"))[1]
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # same size, valid header: only the hash can tell
    shard.write_bytes(bytes(data))
    problems = verify_directory(sharded)
    assert _messages(problems) == [f"{shard.name}: " + problems[0].message]
    assert "sha256 is" in problems[0].message and "was saved" in problems[0].message
    assert verify_directory(sharded, hashes=False) == []
    zoo_core.load_model(sharded)  # structure is fine, so loading (cheap checks) still works
    result = run_zoo("verify", str(sharded), "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["problems"][0]["where"] == shard.name


def test_every_problem_is_reported_not_only_the_first(sharded) -> None:
    shards = sorted(sharded.glob("model-*.safetensors"))
    shards[0].unlink()
    shards[-1].write_bytes(shards[-1].read_bytes()[:-10])
    (sharded / "stray.safetensors").write_bytes(b"")
    text = "\n".join(_messages(verify_directory(sharded)))
    assert f"{shards[0].name}: is missing" in text
    assert f"{shards[-1].name}: is {shards[-1].stat().st_size} bytes" in text
    assert "bytes of data but only" in text  # the truncated shard's header check
    assert "stray.safetensors: is not recorded in config.json" in text
    result = run_zoo("verify", str(sharded))
    assert result.returncode == 1
    assert "problem(s) found" in result.stderr
    assert "Traceback" not in result.stderr


def test_tensors_the_architecture_needs(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    weights = path / "model.safetensors"
    with safe_open(weights, framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    del tensors["conv1.bias"]
    tensors["fc.bias"] = torch.zeros(3, dtype=torch.int32)
    weights.unlink()
    save_file(tensors, weights, metadata=meta)
    text = "\n".join(_messages(verify_directory(path)))
    assert "missing conv1.bias" in text
    assert "fc.bias [3] (model expects [10])" in text
    assert "wrong dtype: fc.bias I32 (model expects F32)" in text
    assert "model.safetensors: is " in text  # and the recorded hash no longer matches


def test_missing_hashes_are_a_warning_and_plugins_are_checked(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "m")
    record = json.loads((path / "config.json").read_text())
    del record["files"]
    record["plugin"] = "zoo-vit"
    (path / "config.json").write_text(json.dumps(record))
    problems = verify_directory(path)
    assert [p.level for p in problems] == ["warning", "error"]
    assert "zoo-vit" in problems[1].message
    record["plugin"] = "zoo-cnn"
    (path / "config.json").write_text(json.dumps(record))
    result = run_zoo("verify", str(path))
    assert result.returncode == 0
    assert "warning: config.json: records no content hashes" in result.stdout


def test_check_file_hashes_is_usable_on_its_own(sharded, tmp_path) -> None:
    files = json.loads((sharded / "config.json").read_text())["files"]
    assert check_file_hashes(sharded, files) == []
    assert _messages(check_file_hashes(tmp_path, {"../x": {"sha256": "0" * 64, "size": 1}}))
    copy = tmp_path / "copy"
    copy.mkdir()
    target = next(iter(files))
    os.symlink("/etc/hostname", copy / target)
    assert _messages(check_file_hashes(copy, {target: files[target]})) == [
        f"{target}: points outside the directory"
    ]


def test_verify_of_something_that_is_not_a_model(tmp_path) -> None:
    assert _messages(verify_directory(tmp_path / "nope"))[0].endswith("is not a directory")
    assert "has no config.json" in _messages(verify_directory(tmp_path))[0]


def test_verify_takes_a_lone_safetensors_file(tmp_path) -> None:
    path = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "m")
    lone = path / "model.safetensors"
    result = run_zoo("verify", str(lone))
    assert result.returncode == 0, result.stderr
    assert f"ok: {lone}" in result.stdout
    raw = tmp_path / "raw.safetensors"
    save_file({"w": torch.zeros(2)}, raw)
    result = run_zoo("verify", str(raw))
    assert result.returncode == 1
    assert "carries no zoo metadata" in result.stdout


def test_verify_of_a_mixin_directory_points_to_arch(tmp_path) -> None:
    target = tmp_path / "mixin"
    target.mkdir()
    save_file({"linear.weight": torch.zeros(1, 1), "linear.bias": torch.zeros(1)},
              target / "model.safetensors")  # fmt: skip
    (target / "config.json").write_text('{"input_dim": 1}')
    result = run_zoo("verify", str(target))
    assert result.returncode == 1
    assert "--arch" in result.stderr
    assert "save or download the model again" not in result.stderr
