"""Aligned files, exact reloads: the layout zoo's writer gives tensor data, and what it buys.

A memory-mapped tensor's address is the map's (page-aligned) plus its offset in the
file. zoo pads the header so data starts at a 64-byte boundary and orders tensors so
each starts at a multiple of the largest power of two (up to 64) dividing its size:
BLAS kernels then see the same alignment in a reloaded model as in the one saved,
and compute the same numbers. Other tools' readers still read the files, and zoo
reads theirs, copying a tensor that is not even aligned to its element size.
"""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open

import zoo_core
from zoo_core.api import open_model
from zoo_core.storage.record import make_record
from zoo_core.storage.safetensors_io import DTYPE_SIZES, tensor_order, write_file
from zoo_core.storage.weights import read_saved, read_tensors
from zoo_core.storage.writer import write_directory


def layout(path: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    """Where a file's tensor data starts, and its header's tensor entries."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header.pop("__metadata__", None)
    return 8 + length, header


def assert_aligned(path: Path) -> int:
    """Every tensor of ``path`` sized a multiple of 64 starts 64-byte aligned; every one
    at a multiple of its element size. Returns how many are 64-byte aligned."""
    start, header = layout(path)
    assert start % 64 == 0, f"{path.name}: data starts at byte {start}"
    aligned = 0
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        where = start + begin
        assert where % DTYPE_SIZES[entry["dtype"]] == 0, (path.name, name, where)
        if (end - begin) % 64 == 0:
            assert where % 64 == 0, (path.name, name, where)
            aligned += 1
    return aligned


def bundled() -> list[str]:
    names = zoo_core.list_models()
    assert {"linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"} <= set(names)
    return names


# A few configs besides the defaults: odd sizes leave tensors of every alignment class.
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "linear_regression": [{}, {"input_dim": 10}, {"input_dim": 37, "output_dim": 5}],
    "simple_cnn": [{}, {"in_channels": 1, "image_size": 8, "channels": 32}],
    "simple_rnn": [{}, {"cell": "lstm", "num_layers": 2, "hidden_size": 13}],
    "tiny_transformer": [{}],
}


def outputs_equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(outputs_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(outputs_equal(a[k], b[k]) for k in a)
    return a == b


# --- the layout ----------------------------------------------------------------------------


def test_larger_alignment_first_then_larger_size_then_name() -> None:
    sizes = {"b": 4, "a": 4, "w": 40, "big": 4096, "odd": 3, "c": 64, "half": 32, "none": 0}
    assert tensor_order(sizes) == ["big", "c", "none", "half", "w", "a", "b", "odd"]
    # Within one alignment, the largest first: after the 64-multiples, it starts aligned.
    assert tensor_order({"linear.bias": 20, "linear.weight": 740}) == [
        "linear.weight",
        "linear.bias",
    ]
    assert tensor_order(dict(reversed(sizes.items()))) == tensor_order(sizes)


def test_every_tensor_zoo_writes_is_aligned(tmp_path: Path) -> None:
    tensors = {
        "bytes": torch.arange(3, dtype=torch.uint8),
        "flags": torch.tensor([True, False, True, True, False]),
        "half": torch.randn(5).half(),
        "brain": torch.randn(7, 3).bfloat16(),
        "single": torch.randn(11),
        "double": torch.randn(3, dtype=torch.float64),
        "ids": torch.arange(9),
        "block": torch.randn(16, 16),
        "row": torch.randn(48),
        "empty": torch.zeros(0, 4),
    }
    for seed, order in enumerate((sorted(tensors), sorted(tensors, reverse=True))):
        written = tmp_path / f"t{seed}.safetensors"
        write_file(written, {k: tensors[k] for k in order}, {"format": "pt"})
        assert assert_aligned(written) == 3  # block, row and the empty one
    # The same tensors in another order make the same bytes.
    assert (tmp_path / "t0.safetensors").read_bytes() == (tmp_path / "t1.safetensors").read_bytes()
    # The shipped variants are zoo-written files too.
    shipped = sorted(Path(__file__).parents[1].glob("plugins/*/*/weights/*/model.safetensors"))
    assert len(shipped) == 3
    for file in shipped:
        assert_aligned(file)
    for name in bundled():
        for i, overrides in enumerate(CONFIGS.get(name, [{}])):
            path = zoo_core.save_model(
                zoo_core.create_model(name, seed=i, **overrides), tmp_path / f"{name}-{i}"
            )
            assert_aligned(path / "model.safetensors")


def test_shards_and_tied_weights_are_aligned_too(tmp_path: Path) -> None:
    model = zoo_core.create_model("simple_rnn", seed=0, hidden_size=64, num_layers=3)
    path = zoo_core.save_model(model, tmp_path / "sharded", max_shard_size=40_000)
    shards = sorted(path.glob("*.safetensors"))
    assert len(shards) > 2
    assert sum(assert_aligned(shard) for shard in shards) >= 6
    weight = torch.randn(10, 16)
    state = {"embed.weight": weight, "head.weight": weight, "head.bias": torch.zeros(10)}
    tied = write_directory(state, make_record("tied", None, None, "x:y", {}), tmp_path / "tied")
    assert assert_aligned(tied / "model.safetensors") == 1  # written once, by zoo's writer
    _, header = layout(tied / "model.safetensors")
    assert sorted(header) == ["embed.weight", "head.bias"]
    with safe_open(tied / "model.safetensors", framework="pt") as f:
        assert f.metadata()["head.weight"] == "embed.weight"
    loaded = read_tensors(read_saved(tied))
    assert loaded["head.weight"] is loaded["embed.weight"]


def test_memory_mapped_tensors_land_at_aligned_addresses(tmp_path: Path) -> None:
    model = zoo_core.create_model("simple_cnn", seed=0)
    loaded = open_model(zoo_core.save_model(model, tmp_path / "cnn"))
    assert loaded.details["memory_mapped"] is True and "realigned" not in loaded.details
    for key, tensor in loaded.model.state_dict().items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes % 64 == 0:
            assert tensor.data_ptr() % 64 == 0, key


# --- exact reloads -------------------------------------------------------------------------


def test_a_reloaded_model_computes_exactly_what_the_saved_one_did(tmp_path: Path) -> None:
    for name in bundled():
        for i, overrides in enumerate(CONFIGS.get(name, [{}])):
            model = zoo_core.create_model(name, seed=i, **overrides).eval()
            loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / f"{name}-{i}"))
            for batch in (1, 3, 8):
                torch.manual_seed(batch)
                inputs = model.example_input(batch)
                with torch.no_grad():
                    want = zoo_core.call_model(model, inputs)
                    got = zoo_core.call_model(loaded, inputs)
                assert outputs_equal(want, got), (name, overrides, batch)


# --- other tools: both directions ------------------------------------------------------------


def test_other_readers_read_what_zoo_writes(tmp_path: Path) -> None:
    from huggingface_hub import load_state_dict_from_file, load_torch_model
    from safetensors import safe_open
    from safetensors.torch import load_file

    model = zoo_core.create_model("tiny_transformer", seed=0)
    expected = model.state_dict()
    single = zoo_core.save_model(model, tmp_path / "single")
    sharded = zoo_core.save_model(model, tmp_path / "sharded", max_shard_size=300_000)
    assert len(list(sharded.glob("*.safetensors"))) > 1
    with safe_open(single / "model.safetensors", framework="pt") as f:
        assert f.metadata()["zoo.architecture"] == "tiny_transformer"
        assert all(torch.equal(f.get_tensor(k), expected[k]) for k in f.keys())
    read = load_file(single / "model.safetensors")
    assert read.keys() == expected.keys()
    hub = load_state_dict_from_file(single / "model.safetensors")
    assert all(torch.equal(hub[k], v) for k, v in expected.items())
    for directory in (single, sharded):
        target = zoo_core.create_model("tiny_transformer", seed=5)
        load_torch_model(target, directory, strict=True)
        assert all(torch.equal(target.state_dict()[k], v) for k, v in expected.items())
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    reader = getattr(dcp, "HuggingFaceStorageReader", None)
    if reader is None:
        pytest.skip("this torch has no HuggingFaceStorageReader")
    for directory in (single, sharded):
        state = {k: torch.empty_like(v) for k, v in expected.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process"
            dcp.load(state, storage_reader=reader(str(directory)))
        assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_zoo_reads_what_other_writers_write(tmp_path: Path) -> None:
    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import save_file

    model = zoo_core.create_model("tiny_transformer", seed=0).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "st.safetensors")
    (tmp_path / "hub").mkdir()
    save_torch_state_dict(state, tmp_path / "hub", max_shard_size=300_000)
    sources = [tmp_path / "st.safetensors", tmp_path / "hub"]
    dcp = pytest.importorskip("torch.distributed.checkpoint")
    writer = getattr(dcp, "HuggingFaceStorageWriter", None)
    if writer is not None:
        (tmp_path / "dcp").mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy = {k: v.clone() for k, v in state.items()}
            dcp.save(copy, storage_writer=writer(tmp_path / "dcp"))
        sources.append(tmp_path / "dcp")
    x = model.example_input(4)
    for source in sources:
        loaded = zoo_core.load_model(source, arch="tiny_transformer")
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()), source
        with torch.no_grad():
            got, want = zoo_core.call_model(loaded, x), zoo_core.call_model(model, x)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def _misaligned_file(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A valid safetensors file whose data starts 2 bytes past a multiple of 8."""
    header: dict[str, Any] = {}
    offset = 0
    for name, t in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, 0]}
        offset += t.numel() * 4
        header[name]["data_offsets"][1] = offset
    text = json.dumps(header).encode()
    text += b" " * ((-(8 + len(text)) % 8) + 2)
    data = b"".join(t.contiguous().numpy().tobytes() for t in tensors.values())
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def test_a_foreign_tensor_off_its_element_size_is_copied_and_said(tmp_path: Path) -> None:
    model = zoo_core.create_model("linear_regression", seed=0, input_dim=16, output_dim=4)
    state = model.state_dict()
    _misaligned_file(tmp_path / "odd.safetensors", state)
    sizes = {"input_dim": 16, "output_dim": 4}
    loaded = open_model(tmp_path / "odd.safetensors", arch="linear_regression", overrides=sizes)
    assert sorted(loaded.details["realigned"]) == ["linear.bias", "linear.weight"]
    for key, tensor in loaded.model.state_dict().items():
        assert tensor.data_ptr() % 4 == 0 and torch.equal(tensor, state[key]), key
    x = model.example_input(5)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded.model(x))
    # zoo's own files never need it: nothing is copied, the map is used as it is.
    mapped = open_model(zoo_core.save_model(model, tmp_path / "lr"))
    assert "realigned" not in mapped.details
