"""The GPU load pipeline's reader and buffer ring, run with a CPU target (no GPU needed).

Everything but the copy to the device is the same code on CPU: the byte ranges
are cut into chunks, read by several threads with os.preadv into a ring of
buffers, copied into the destination tensors and cast. Each result is compared
bit for bit with safetensors' own reader.
"""

from __future__ import annotations

import json
import os
import struct
import threading

import pytest
import torch
from safetensors.torch import load_file, save_file

import zoo_core
from zoo_core.errors import WeightsError
from zoo_core.storage.gpu_reader import TensorRead, load_tensors, pipeline_enabled, read_files
from zoo_core.storage.safetensors_io import read_header
from zoo_core.storage.weights import read_saved


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


def _assert_identical(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, ref in want.items():
        assert got[key].dtype == ref.dtype, key
        assert got[key].shape == ref.shape, key
        assert got[key].device.type == "cpu"
        assert torch.equal(_bytes(got[key]), _bytes(ref)), key


def _mixed() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "f32": torch.randn(13, 7, generator=g),  # 364 bytes: not a multiple of any chunk below
        "f64_scalar": torch.randn((), generator=g, dtype=torch.float64),
        "bf16": torch.randn(1001, generator=g).bfloat16(),
        "f16": torch.randn(3, 3, 3, generator=g).half(),
        "i64": torch.randint(-(2**40), 2**40, (5,), generator=g),
        "i8": torch.randint(-128, 127, (33,), generator=g, dtype=torch.int8),
        "u8": torch.randint(0, 255, (17,), generator=g, dtype=torch.uint8),
        "mask": torch.rand(9, generator=g) > 0.5,
        "empty": torch.empty(0, 4),
        "f8": torch.randn(11, generator=g).to(torch.float8_e4m3fn),
    }


def _read_all(path, device="cpu", **kwargs) -> dict[str, torch.Tensor]:
    header = read_header(path)
    return read_files({path: (header, list(header.tensors))}, device, **kwargs)


@pytest.mark.parametrize(
    ("threads", "slot_bytes", "slots"),
    [
        (1, 1 << 20, 1),  # one buffer bigger than the file
        (4, 7, 2),  # odd buffers much smaller than most tensors, fewer buffers than threads
        (3, 64, 5),
        (2, 4096, 2),
    ],
)
def test_pipeline_reads_a_file_bit_for_bit(tmp_path, threads, slot_bytes, slots) -> None:
    path = tmp_path / "mixed.safetensors"
    save_file(_mixed(), path)
    got = _read_all(path, threads=threads, slot_bytes=slot_bytes, slots=slots)
    _assert_identical(got, load_file(path))


def test_pipeline_reads_unaligned_tensors(tmp_path) -> None:
    # safetensors writers order tensors so that each starts aligned; a file from
    # elsewhere need not. Here a float32 and a float64 start at odd offsets.
    parts = {
        "a_byte": torch.tensor([7], dtype=torch.uint8),
        "b_f32": torch.randn(5),
        "c_two": torch.tensor([1, 2], dtype=torch.uint8),
        "d_f64": torch.randn(3, dtype=torch.float64),
    }
    header, data, position = {}, b"", 0
    codes = {torch.uint8: "U8", torch.float32: "F32", torch.float64: "F64"}
    for key, t in parts.items():
        raw = bytes(_bytes(t).tolist())
        header[key] = {
            "dtype": codes[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [position, position + len(raw)],
        }
        data += raw
        position += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "unaligned.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    info = read_header(path).tensors
    assert info["b_f32"].begin % 4 == 1 and info["d_f64"].begin % 8 != 0
    for slot_bytes in (3, 16, 1 << 16):
        got = _read_all(path, threads=2, slot_bytes=slot_bytes, slots=2)
        _assert_identical(got, parts)


def test_pipeline_reads_a_sharded_model_and_a_subset(tmp_path) -> None:
    model = zoo_core.create_model("simple_rnn", cell="lstm", hidden_size=32, num_layers=2, seed=1)
    path = zoo_core.save_model(model, tmp_path / "m", max_shard_size="8KB")
    saved = read_saved(path)
    files = sorted(set(saved.key_to_file.values()))
    assert len(files) > 2
    plan = {}
    for file in files:
        keys = [k for k, f in saved.key_to_file.items() if f == file]
        plan[file] = (saved.headers[file], keys)
    got = read_files(plan, "cpu", threads=3, slot_bytes=1000, slots=3)
    want = {}
    for file in files:
        want.update(load_file(file))
    _assert_identical(got, want)
    # Only some tensors of one shard: the others are not read.
    first = files[0]
    keys = [k for k, f in saved.key_to_file.items() if f == first][:1]
    got = read_files({first: (saved.headers[first], keys)}, "cpu", threads=2, slot_bytes=100)
    _assert_identical(got, {k: want[k] for k in keys})


def test_pipeline_casts_floating_tensors_only(tmp_path) -> None:
    path = tmp_path / "mixed.safetensors"
    tensors = _mixed()
    save_file(tensors, path)
    got = _read_all(path, dtype=torch.bfloat16, threads=2, slot_bytes=50)
    for key, ref in tensors.items():
        if ref.is_floating_point():
            assert got[key].dtype == torch.bfloat16, key
            assert torch.equal(got[key], ref.to(torch.bfloat16)), key
        else:
            assert got[key].dtype == ref.dtype and torch.equal(got[key], ref), key


def test_a_file_shorter_than_its_header_promises_is_an_error(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.randn(64)}, path)
    header = read_header(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        info = header.tensors["w"]
        # Ask for bytes past the end, as a file truncated after its header was read would.
        read = TensorRead("w", fd, header.data_start + info.begin + 8, 256, "F32", (64,), "w.st")
        before = threading.active_count()
        with pytest.raises(WeightsError, match=r"w\.st ended at byte"):
            load_tensors([read], "cpu", threads=3, slot_bytes=16, slots=2)
        assert threading.active_count() == before  # no reader thread left behind
    finally:
        os.close(fd)
    with open(path, "r+b") as f:
        f.truncate(header.size - 4)
    with pytest.raises(WeightsError, match="changed while loading"):
        read_files({path: (header, ["w"])}, "cpu")


def test_the_pipeline_is_for_cuda_only_and_can_be_turned_off(monkeypatch) -> None:
    assert not pipeline_enabled(torch.device("cpu"))
    assert not pipeline_enabled(None)
    assert pipeline_enabled(torch.device("cuda"))
    monkeypatch.setenv("ZOO_GPU_PIPELINE", "0")
    assert not pipeline_enabled(torch.device("cuda", 1))
