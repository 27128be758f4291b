"""Hostile files: property-based tests of the loader against damaged and malicious inputs.

Every generated case must end either in a model (a mutation that happens to be
harmless) or in a :class:`ZooError` with a message; any other exception, a hang
(hypothesis' deadline) or a huge allocation (checked before reading) fails.
Cases that are invalid by construction must end in a ZooError.

How many cases: a quick default for developers (60 per property), and the full
count when ``CI=true`` (what CI sets) or ``ZOO_FUZZ=full``: 1000 per property,
at least 10,000 generated cases across weights files, index files and
``config.json`` (``test_zz_case_count`` checks the total). ``ZOO_FUZZ_EXAMPLES=N``
sets the count per property directly.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo_core
from tests.conftest import run_zoo
from zoo_core.errors import ZooError
from zoo_core.storage.record import INDEX_NAME

FULL = os.environ.get("CI", "").lower() == "true" or os.environ.get("ZOO_FUZZ") == "full"
EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES") or (1000 if FULL else 60))
# Generated cases run, per test (each case makes one scratch copy).
CASES: collections.Counter[str] = collections.Counter()

FUZZ = settings(
    max_examples=EXAMPLES,
    # Generous, so a loaded CI machine does not fail a case for being slow; a case that
    # does real work on hostile input (a huge allocation, a parse of gigabytes) takes far longer.
    deadline=5000,
    # `scratch` is a factory that makes a fresh copy on each call, so sharing it is safe.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    derandomize=True,  # the same cases every run: CI failures reproduce
)

_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2}


@pytest.fixture(scope="module")
def fuzz_root(memory_tmp: Callable[[str], Path]) -> Path:
    """Where the cases live: thousands of small copies cost far less in memory than on disk."""
    return memory_tmp("fuzz")


@pytest.fixture(scope="module")
def pristine(fuzz_root: Path) -> Iterator[Path]:
    """A valid small zoo model, saved once and sharded: two weight files and an index."""
    root = Path(tempfile.mkdtemp(prefix="zoo-fuzz-", dir=fuzz_root))
    model = zoo_core.create_model("linear_regression", input_dim=40, output_dim=30, seed=0)
    zoo_core.save_model(model, root / "single")
    zoo_core.save_model(model, root / "sharded", max_shard_size=1000)
    small = {"d_model": 16, "num_heads": 2, "num_layers": 1, "dim_feedforward": 16}
    zoo_core.save_model(
        zoo_core.create_model("tiny_transformer", vocab_size=50, seed=0, **small),
        root / "transformer",
    )
    zoo_core.load_model(root / "transformer")  # imports the plugin's model code before timing
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def scratch(request: pytest.FixtureRequest, fuzz_root: Path) -> Iterator[Callable[[str], Path]]:
    """Fresh copies of the pristine directories, one per hypothesis example."""
    made: list[Path] = []
    name = request.node.originalname

    def copy(src: Path) -> Path:
        CASES[name] += 1
        dst = Path(tempfile.mkdtemp(prefix="zoo-case-", dir=fuzz_root)) / "m"
        shutil.copytree(src, dst, symlinks=True)
        made.append(dst.parent)
        return dst

    yield copy
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def _load(path: Path, *, must_fail: bool) -> None:
    try:
        model = zoo_core.load_model(path)
    except ZooError as err:
        assert err.message.strip(), "a zoo error must say what was wrong"
        return
    assert not must_fail, f"{path} loaded although it is invalid"
    assert isinstance(model, zoo_core.ZooModel)


def _lone_file(directory: Path) -> Path:
    return directory / "model.safetensors"


def _header_file(header: bytes, data: bytes, length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


# Byte-level damage ---------------------------------------------------------------------------


@FUZZ
@given(cut=st.integers(min_value=0, max_value=20_000))
def test_truncated_files(pristine, scratch, cut) -> None:
    d = scratch(pristine / "single")
    f = _lone_file(d)
    data = f.read_bytes()
    f.write_bytes(data[: min(cut, len(data) - 1)])
    _load(d, must_fail=True)
    _load(f, must_fail=True)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 600), st.integers(1, 255)), min_size=1, max_size=6))
def test_corrupted_headers(pristine, scratch, flips) -> None:
    d = scratch(pristine / "single")
    f = _lone_file(d)
    data = bytearray(f.read_bytes())
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    f.write_bytes(bytes(data))
    _load(d, must_fail=False)  # a flip in a version string or a weight may be harmless
    _load(f, must_fail=False)


@FUZZ
@given(
    length=st.one_of(
        st.integers(min_value=2**20, max_value=2**64 - 1),
        st.sampled_from([0, 1, 7, 2**63, 2**64 - 1, 100_000_001]),
    )
)
def test_absurd_header_lengths(pristine, scratch, length) -> None:
    d = scratch(pristine / "single")
    f = _lone_file(d)
    data = f.read_bytes()
    f.write_bytes(struct.pack("<Q", length) + data[8:])
    _load(d, must_fail=True)


# Structurally hostile headers ----------------------------------------------------------------

_shape = st.lists(st.integers(min_value=-3, max_value=2**62), min_size=0, max_size=4)
_entry = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from(_DTYPES), st.text(max_size=6), st.integers()),
        "shape": st.one_of(_shape, st.text(max_size=3), st.none()),
        "data_offsets": st.one_of(
            st.lists(st.integers(min_value=-5, max_value=2**63), min_size=0, max_size=3),
            st.none(),
        ),
    }
)


@FUZZ
@given(
    entries=st.dictionaries(
        st.sampled_from(["linear.weight", "linear.bias", "x", "__metadata__"]), _entry, max_size=3
    ),
    data_len=st.integers(min_value=0, max_value=5000),
)
def test_random_headers(pristine, scratch, entries, data_len) -> None:
    d = scratch(pristine / "single")
    header = json.dumps(entries).encode()
    _lone_file(d).write_bytes(_header_file(header, b"\0" * data_len))
    _load(d, must_fail=True)


@FUZZ
@given(
    offsets=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 5000)), min_size=2, max_size=2),
    extra=st.integers(min_value=-8, max_value=64),
)
def test_overlapping_or_out_of_range_offsets(pristine, scratch, offsets, extra) -> None:
    d = scratch(pristine / "single")
    (wb, we), (bb, be) = offsets
    header = {
        "linear.weight": {"dtype": "F32", "shape": [30, 40], "data_offsets": [wb, we]},
        "linear.bias": {"dtype": "F32", "shape": [30], "data_offsets": [bb, be]},
    }
    valid = (wb, we, bb, be) in ((0, 4800, 4800, 4920), (120, 4920, 0, 120)) and extra == 0
    size = max(we, be, 0) + extra
    raw = json.dumps(header).encode()
    _lone_file(d).write_bytes(_header_file(raw, b"\0" * max(size, 0)))
    _load(d, must_fail=not valid)


@FUZZ
@given(
    dtype=st.sampled_from(_DTYPES),
    shape=st.lists(st.integers(min_value=0, max_value=50), min_size=0, max_size=3),
)
def test_wrong_dtypes_and_shapes(pristine, scratch, dtype, shape) -> None:
    d = scratch(pristine / "single")
    good = {"linear.bias": ("F32", [30])}
    size = _SIZES.get(dtype, 1)
    numel = 1
    for dim in shape:
        numel *= dim
    tensors = {**good, "linear.weight": (dtype, shape)}
    header, offset = {}, 0
    for name, (dt, shp) in tensors.items():
        n = (numel * size) if name == "linear.weight" else 120
        header[name] = {"dtype": dt, "shape": shp, "data_offsets": [offset, offset + n]}
        offset += n
    valid = shape == [30, 40] and dtype in ("F64", "F32", "F16", "BF16")
    _lone_file(d).write_bytes(_header_file(json.dumps(header).encode(), b"\0" * offset))
    _load(d, must_fail=not valid)


@FUZZ
@given(key=st.sampled_from(["linear.weight", "linear.bias", "__metadata__"]))
def test_duplicate_keys(pristine, scratch, key) -> None:
    d = scratch(pristine / "single")
    entry = '{"dtype":"F32","shape":[30],"data_offsets":[0,120]}'
    extra = '{"format":"pt"}' if key == "__metadata__" else entry
    first = '"__metadata__":{"format":"pt"},' if key == "__metadata__" else ""
    raw = (
        "{" + first + '"linear.bias":' + entry + ',"linear.weight":'
        '{"dtype":"F32","shape":[30,40],"data_offsets":[120,4920]},'
        f'"{key}":{extra}' + "}"
    ).encode()
    _lone_file(d).write_bytes(_header_file(raw, b"\0" * 4920))
    with pytest.raises(ZooError, match="twice"):
        zoo_core.load_model(d)


@FUZZ
@given(junk=st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b)))
def test_non_utf8_metadata(pristine, scratch, junk) -> None:
    d = scratch(pristine / "single")
    raw = b'{"__metadata__":{"zoo.architecture":"' + junk + b'"}}'
    _lone_file(d).write_bytes(_header_file(raw, b""))
    with pytest.raises(ZooError, match="not UTF-8"):
        zoo_core.load_model(_lone_file(d))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Directories: shards, indexes, symlinks, config.json -----------------------------------------


@FUZZ
@given(
    names=st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "model-00001-of-00002.safetensors",
                    "model-00002-of-00002.safetensors",
                    "model-00003-of-00002.safetensors",
                    "../single/model.safetensors",
                    "/etc/passwd",
                    "",
                    ".",
                    "config.json",
                ]
            ),
            st.text(max_size=12),
            st.integers(),
            st.none(),
        ),
        min_size=1,
        max_size=3,
    ),
    keys=st.lists(st.sampled_from(["linear.weight", "linear.bias", "ghost"]), min_size=1),
)
def test_index_files_naming_missing_or_extra_shards(pristine, scratch, names, keys) -> None:
    d = scratch(pristine / "sharded")
    index = json.loads((d / INDEX_NAME).read_text())
    original = dict(index["weight_map"])
    for key, name in zip(keys, names * len(keys), strict=False):
        index["weight_map"][key] = name
    (d / INDEX_NAME).write_text(json.dumps(index))
    _load(d, must_fail=index["weight_map"] != original)


@FUZZ
@given(
    target=st.sampled_from(["outside", "dotdot", "dev", "loop", "inside"]),
    which=st.integers(0, 1),
)
def test_symlinked_shards(pristine, scratch, target, which) -> None:
    d = scratch(pristine / "sharded")
    shard = sorted(d.glob("model-*.safetensors"))[which]
    outside = d.parent / "elsewhere.safetensors"
    shutil.copy(shard, outside)
    shard.unlink()
    link = {
        "outside": str(outside),
        "dotdot": "../elsewhere.safetensors",
        "dev": "/dev/zero",
        "loop": shard.name,
        "inside": None,
    }[target]
    if link is None:
        os.rename(outside, d / "real.safetensors")
        link = "real.safetensors"
    os.symlink(link, shard)
    _load(d, must_fail=target != "inside")


_json_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(
    field=st.sampled_from(
        ["input_dim", "output_dim", "bogus", "architecture", "plugin", "zoo_format", "files"]
    ),
    value=_json_value,
    where=st.sampled_from(["config", "record"]),
)
def test_garbage_config_json(pristine, scratch, field, value, where) -> None:
    d = scratch(pristine / "single")
    record = json.loads((d / "config.json").read_text())
    original = json.dumps(record, sort_keys=True)
    target = record["config"] if where == "config" else record
    target[field] = value
    (d / "config.json").write_text(json.dumps(record))
    # Unchanged values, unknown top-level keys (room for future fields), no plugin named
    # (the architecture alone resolves) and an empty hash record may load; nothing else.
    harmless = (
        json.dumps(record, sort_keys=True) == original
        or (where == "record" and field in ("bogus", "input_dim", "output_dim"))
        or (where == "record" and field == "plugin" and value is None)
        or (where == "record" and field == "files" and value == {})
    )
    _load(d, must_fail=not harmless)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        '{"config": ' + "1" * 10_000 + "}",
        '{"zoo_format": 1, "architecture": "linear_regression", "config": {"input_dim": 1e999}}',
        '{"zoo_format": 1, "architecture": "linear_regression", "config": {"input_dim": '
        + str(2**80)
        + "}}",
        "\ufeff{}",
        "\xff",
    ],
)
def test_config_json_edge_cases(pristine, scratch, text) -> None:
    d = scratch(pristine / "single")
    (d / "config.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    _load(d, must_fail=True)


def test_hostile_files_through_the_cli(pristine, scratch) -> None:
    d = scratch(pristine / "single")
    _lone_file(d).write_bytes(struct.pack("<Q", 2**63) + b"{}")
    result = run_zoo("load", str(d))
    assert result.returncode == 1
    assert result.stderr.startswith("zoo: error: ")
    assert "100 MB" in result.stderr
    assert "Traceback" not in result.stderr
    torch.save({"x": torch.zeros(1)}, d / "model.safetensors")
    result = run_zoo("verify", str(d))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


@FUZZ
@given(index=_json_value, keep_map=st.booleans())
def test_random_index_files(pristine, scratch, index, keep_map) -> None:
    d = scratch(pristine / "sharded")
    original = json.loads((d / INDEX_NAME).read_text())
    if keep_map and isinstance(index, dict):
        # The right weight map inside a random object: only a broken one may fail.
        index = {**index, "weight_map": original["weight_map"]}
    elif keep_map:
        index = {"weight_map": index}
    (d / INDEX_NAME).write_text(json.dumps(index))
    valid_map = isinstance(index, dict) and index.get("weight_map") == original["weight_map"]
    _load(d, must_fail=not valid_map)


@FUZZ
@given(text=st.one_of(st.binary(max_size=200), _json_value.map(lambda v: json.dumps(v).encode())))
def test_random_config_json_bytes(pristine, scratch, text) -> None:
    d = scratch(pristine / "single")
    (d / "config.json").write_bytes(text)
    _load(d, must_fail=True)  # no random bytes make a zoo record naming an architecture


_size = st.one_of(
    st.integers(min_value=-3, max_value=64),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([0, 1, 2**31, 2**32 + 1, 2**62, 10**30]),
)


@FUZZ
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["max_len", "d_model", "num_heads", "vocab_size", "seq_len", "num_classes",
             "dim_feedforward", "dropout", "pooling", "input_kind"]
        ),
        st.one_of(_size, _json_value),
        min_size=1,
        max_size=4,
    )
)  # fmt: skip
def test_config_values_cannot_make_a_load_allocate_without_bound(
    pristine, scratch, fields, monkeypatch
) -> None:
    # What the config makes zoo compute beyond the weights is capped (SECURITY.md); a
    # low cap here keeps every case small and fast, the default cap is tested elsewhere.
    # num_layers is left out: a constructor looping a billion times is the plugin's to
    # refuse (SECURITY.md, "Limits"), zoo cannot see it coming.
    monkeypatch.setenv("ZOO_MAX_BUFFER_BYTES", str(8 * 1024 * 1024))
    d = scratch(pristine / "transformer")
    record = json.loads((d / "config.json").read_text())
    record["config"].update(fields)
    (d / "config.json").write_text(json.dumps(record))
    _load(d, must_fail=False)  # max_len, dropout and pooling may change harmlessly


@FUZZ
@given(
    member=st.sampled_from(["config.json", INDEX_NAME, "model-00001-of-00002.safetensors"]),
    kind=st.sampled_from(["fifo", "directory", "dev-null", "dev-zero", "empty", "dangling"]),
)
def test_members_that_are_not_regular_files(pristine, scratch, member, kind) -> None:
    d = scratch(pristine / "sharded")
    path = d / member
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "dangling":
        os.symlink("nowhere.safetensors", path)
    else:
        os.symlink("/dev/null" if kind == "dev-null" else "/dev/zero", path)
    _load(d, must_fail=True)
    from zoo_core.sources.verify import verify_directory

    assert verify_directory(d), f"verify found nothing wrong with {member} as {kind}"


def test_zz_case_count() -> None:
    """The full run generates at least 10,000 cases (runs last: tests run in file order)."""
    total = sum(CASES.values())
    print(f"fuzz cases: {total} ({dict(CASES)})")
    properties = [n for n, f in globals().items() if n.startswith("test_") and hasattr(
        f, "hypothesis"
    )]  # fmt: skip
    if FULL and set(CASES) >= set(properties):
        assert total >= 10_000, total
