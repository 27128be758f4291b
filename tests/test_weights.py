"""Weights at scale: sharding, placement, Hugging Face interoperability, crash safety."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import PyTorchModelHubMixin, load_torch_model, save_torch_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo_core
from tests.conftest import run_python_code, run_zoo, start_python_code
from zoo_core.errors import UsageError, WeightsError, ZooWarning
from zoo_core.storage.record import INDEX_NAME, make_record
from zoo_core.storage.weights import read_saved, read_tensors
from zoo_core.storage.writer import write_directory
from zoo_linear.model import LinearRegression


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key


def _big_rnn(seed: int = 0, **extra):
    return zoo_core.create_model(
        "simple_rnn", cell="lstm", hidden_size=64, num_layers=3, seed=seed, **extra
    )


# Sharding ------------------------------------------------------------------------------------


def test_sharded_save_uses_the_hub_layout_and_round_trips(tmp_path) -> None:
    model = _big_rnn()
    path = zoo_core.save_model(model, tmp_path / "m", max_shard_size="40KB")
    names = sorted(os.listdir(path))
    shards = [n for n in names if n.startswith("model-")]
    assert len(shards) > 2
    assert shards == [
        f"model-{i:05d}-of-{len(shards):05d}.safetensors" for i in range(1, 1 + len(shards))
    ]
    assert INDEX_NAME in names and "model.safetensors" not in names
    index = json.loads((path / INDEX_NAME).read_text())
    assert set(index["weight_map"]) == set(model.state_dict())
    assert index["metadata"]["zoo.architecture"] == "simple_rnn"
    record = json.loads((path / "config.json").read_text())
    assert set(record["files"]) == {*shards, INDEX_NAME}
    loaded = zoo_core.load_model(path)
    _same(model, loaded)


def test_every_shard_describes_itself(tmp_path) -> None:
    path = zoo_core.save_model(_big_rnn(), tmp_path / "m", max_shard_size=40_000)
    for shard in sorted(path.glob("model-*.safetensors")):
        with safe_open(shard, framework="pt") as f:
            assert f.metadata()["zoo.architecture"] == "simple_rnn"


@pytest.mark.slow
def test_zoo_save_max_shard_size(tmp_path) -> None:
    out = tmp_path / "m"
    args = ["simple_rnn", str(out), "--set", "hidden_size=64", "--set", "num_layers=3"]
    result = run_zoo("save", *args, "--max-shard-size", "40KB", "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert (out / INDEX_NAME).is_file()
    assert run_zoo("verify", str(out)).returncode == 0
    bad = run_zoo("save", *args, "--max-shard-size", "lots")
    assert bad.returncode == 2
    assert "invalid --max-shard-size 'lots'" in bad.stderr


def test_shard_sizes_in_the_iec_units_zoo_prints_are_accepted(tmp_path) -> None:
    from zoo_core.storage.writer import shard_limit

    assert shard_limit("1GiB") == 2**30
    assert shard_limit("40 KiB") == 40 * 1024
    assert shard_limit("1.5MiB") == 3 * 2**19
    assert shard_limit("2gb") == 2 * 10**9
    out = tmp_path / "m"
    args = ["simple_rnn", str(out), "--set", "hidden_size=64", "--set", "num_layers=3"]
    result = run_zoo("save", *args, "--max-shard-size", "40KiB")
    assert result.returncode == 0, result.stderr
    assert (out / INDEX_NAME).is_file()


def test_a_tensor_larger_than_the_shard_size_is_said_once(tmp_path) -> None:
    out = tmp_path / "m"
    args = ["--set", "input_dim=200", "--set", "output_dim=200", "--max-shard-size", "50KB"]
    result = run_zoo("save", "linear_regression", str(out), *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("zoo: warning:") == 1
    assert "exceed the shard size 48.8 KiB" in result.stderr
    assert "linear.weight, 156.2 KiB" in result.stderr


def test_invalid_shard_size_writes_nothing(tmp_path) -> None:
    with pytest.raises(UsageError, match="max_shard_size"):
        zoo_core.save_model(_big_rnn(), tmp_path / "m", max_shard_size="ten")
    assert os.listdir(tmp_path) == []


# Placement and memory ------------------------------------------------------------------------


def test_dtype_is_applied_per_tensor_on_sharded_directories(tmp_path) -> None:
    model = _big_rnn()
    path = zoo_core.save_model(model, tmp_path / "m", max_shard_size="40KB")
    loaded = zoo_core.load_model(path, dtype="bfloat16")
    for key, value in model.state_dict().items():
        got = loaded.state_dict()[key]
        assert got.dtype == torch.bfloat16
        assert torch.equal(got, value.to(torch.bfloat16))


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, zoo_core, zoo_rnn.model
    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    before = rss("VmRSS")
    model = zoo_core.load_model(sys.argv[1], dtype=sys.argv[2] if len(sys.argv) > 2 else None)
    largest = max(p.numel() * 4 for p in model.parameters())
    print(json.dumps({"peak": rss("VmHWM") - before, "largest": largest}))
    """
)


@pytest.mark.parametrize("shard", [None, "40MB"])
def test_casting_at_load_holds_at_most_one_extra_tensor(shard, tmp_path) -> None:
    # 128 MiB of float32 in 16 tensors; a bfloat16 load ends with 64 MiB. Casting the whole
    # state dict at once, or keeping the float32 file mapped until the end, would peak at
    # 192 MiB; casting one tensor at a time peaks at 64 MiB plus the largest tensor (16 MiB).
    model = zoo_core.create_model(
        "simple_rnn", cell="lstm", input_size=1024, hidden_size=1024, num_layers=4, seed=0
    )
    total = sum(t.numel() * 4 for t in model.state_dict().values())
    path = zoo_core.save_model(model, tmp_path / "m", max_shard_size=shard)
    del model
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path), "bfloat16"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    probe = json.loads(result.stdout)
    assert probe["peak"] < total / 2 + probe["largest"] + 24 * 2**20, (probe, total)


def test_a_full_precision_load_maps_the_file_instead_of_copying(tmp_path) -> None:
    model = zoo_core.create_model("linear_regression", input_dim=4096, output_dim=4096)
    path = zoo_core.save_model(model, tmp_path / "m")
    del model
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    # Nothing is read until used: no copy of the 64 MiB weight is made at load.
    assert json.loads(result.stdout)["peak"] < 16 * 2**20


def test_cuda_load_fails_clearly_without_a_gpu(tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; benchmarks/gpu_check.py covers it")
    path = zoo_core.save_model(zoo_core.create_model("linear_regression"), tmp_path / "m")
    with pytest.raises(zoo_core.DeviceError, match="CUDA is not available"):
        zoo_core.load_model(path, device="cuda")
    result = run_zoo("load", str(path), "--device", "cuda")
    assert result.returncode == 1
    assert "zoo: error: device 'cuda' was asked for, but CUDA is not available" in result.stderr
    assert "Traceback" not in result.stderr


# Interoperability ----------------------------------------------------------------------------


@pytest.mark.parametrize("shard", [None, "40KB"])
def test_zoo_directories_load_with_plain_safetensors_and_huggingface_hub(shard, tmp_path) -> None:
    model = _big_rnn()
    path = zoo_core.save_model(model, tmp_path / "m", max_shard_size=shard)
    if shard is None:
        plain = load_file(path / "model.safetensors")
    else:
        plain = {}
        for shard_file in sorted(path.glob("model-*.safetensors")):
            plain.update(load_file(shard_file))
    assert plain.keys() == model.state_dict().keys()
    assert all(torch.equal(plain[k], v) for k, v in model.state_dict().items())
    fresh = _big_rnn(seed=1)
    load_torch_model(fresh, path, strict=True)
    _same(model, fresh)


class HubLinear(LinearRegression, PyTorchModelHubMixin):
    """What a user of huggingface_hub's mixin writes for a zoo architecture."""


def test_a_mixin_directory_loads_with_arch(tmp_path) -> None:
    model = HubLinear(LinearRegression.Config(input_dim=6, output_dim=3))
    model.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text()) == {
        "input_dim": 6,
        "output_dim": 3,
    }
    with pytest.raises(WeightsError, match="does not say which zoo architecture") as info:
        zoo_core.load_model(tmp_path / "hf")
    assert "--arch" in info.value.hint
    loaded = zoo_core.load_model(tmp_path / "hf", arch="linear_regression")
    assert type(loaded) is LinearRegression
    assert loaded.config == model.config
    _same(model, loaded)
    result = run_zoo("load", str(tmp_path / "hf"), "--arch", "linear_regression", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_shape"] == [1, 3]
    # And back: the mixin reads what zoo saves.
    path = zoo_core.save_model(loaded, tmp_path / "zoo")
    again = HubLinear.from_pretrained(path)
    _same(model, again)


def test_save_torch_model_directories_load_with_arch_and_set(tmp_path) -> None:
    model = _big_rnn(output_size=7)
    (tmp_path / "hf").mkdir()
    save_torch_model(model, tmp_path / "hf", max_shard_size="40KB")
    assert (tmp_path / "hf" / INDEX_NAME).exists()
    assert not (tmp_path / "hf" / "config.json").exists()
    sets = ["--set", "cell=lstm", "--set", "hidden_size=64", "--set", "num_layers=3"]
    result = run_zoo("load", str(tmp_path / "hf"), "--arch", "simple_rnn", *sets, "--json")
    assert result.returncode == 1
    assert "fc.weight [7, 64] (model expects [5, 64])" in json.loads(result.stdout)["error"]
    result = run_zoo(
        "load", str(tmp_path / "hf"), "--arch", "simple_rnn", *sets, "--set", "output_size=7"
    )
    assert result.returncode == 0, result.stderr
    from zoo_core.api import open_model

    overrides = {"cell": "lstm", "hidden_size": 64, "num_layers": 3, "output_size": 7}
    loaded = open_model(tmp_path / "hf", arch="simple_rnn", overrides=overrides).model
    _same(model, loaded)


def test_arch_with_bad_config_json_values_is_a_weights_error(tmp_path) -> None:
    (tmp_path / "hf").mkdir()
    save_torch_model(zoo_core.create_model("linear_regression"), tmp_path / "hf")
    (tmp_path / "hf" / "config.json").write_text('{"input_dim": "one", "hidden_act": "gelu"}')
    with pytest.raises(WeightsError, match="'input_dim' expects int"):
        zoo_core.load_model(tmp_path / "hf", arch="linear_regression")
    (tmp_path / "hf" / "config.json").write_text('{"input_dim": 1, "hidden_act": "gelu"}')
    assert zoo_core.load_model(tmp_path / "hf", arch="linear_regression").config.input_dim == 1


def test_shared_tensors_go_through_the_hub_writer(tmp_path) -> None:
    weight = torch.randn(4, 4)
    state = {"a.weight": weight, "b.weight": weight}  # tied, as in embeddings/heads
    record = make_record("tied", None, None, "x:y", {})
    path = write_directory(state, record, tmp_path / "t")
    saved = read_saved(path)
    assert saved.aliases  # one name was dropped on disk and noted in the metadata
    tensors = read_tensors(saved)
    assert torch.equal(tensors["a.weight"], weight) and torch.equal(tensors["b.weight"], weight)
    files = json.loads((path / "config.json").read_text())["files"]
    assert set(files) == {"model.safetensors"}


def _flatten_into_one_buffer(model: torch.nn.Module) -> None:
    """Make every parameter a view of one flat buffer, as cuDNN does to RNN weights on CUDA."""
    params = list(model.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])
    offset = 0
    for p in params:
        p.data = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()


def test_views_of_one_flat_buffer_save_and_load_exactly(tmp_path) -> None:
    model = zoo_core.create_model("simple_rnn", cell="lstm", num_layers=2, seed=0)
    _flatten_into_one_buffer(model)
    loaded = zoo_core.load_model(zoo_core.save_model(model, tmp_path / "rnn"))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_flat_buffer_views_next_to_a_tied_alias(tmp_path) -> None:
    flat = torch.arange(12.0)
    state = {"a": flat[:6].view(2, 3), "b": flat[6:].view(2, 3)}
    state["c"] = state["a"]  # a true alias: dropped on disk, noted in the metadata
    path = write_directory(state, make_record("views", None, None, "x:y", {}), tmp_path / "v")
    saved = read_saved(path)
    assert saved.aliases == {"c": "a"}
    tensors = read_tensors(saved)
    assert {k: v.tolist() for k, v in tensors.items()} == {k: v.tolist() for k, v in state.items()}


# Crash safety --------------------------------------------------------------------------------


def test_a_loaded_model_keeps_working_when_its_directory_is_replaced(tmp_path) -> None:
    target = tmp_path / "m"
    first = zoo_core.create_model("linear_regression", input_dim=512, output_dim=512, seed=0)
    zoo_core.save_model(first, target)
    mapped = zoo_core.load_model(target)  # memory-mapped from target/model.safetensors
    for seed in (1, 2):
        other = zoo_core.create_model("linear_regression", input_dim=512, output_dim=512, seed=seed)
        zoo_core.save_model(other, target)
    _same(first, mapped)
    x = first.example_input(2)
    with torch.no_grad():
        assert torch.equal(first(x), mapped(x))
    _same(other, zoo_core.load_model(target))
    assert sorted(os.listdir(tmp_path)) == ["m"]


_CONCURRENT_SAVE = textwrap.dedent(
    """
    import sys, zoo_core
    dim = int(sys.argv[2])
    for i in range(int(sys.argv[3])):
        model = zoo_core.create_model("linear_regression", input_dim=dim, output_dim=64, seed=i)
        zoo_core.save_model(model, sys.argv[1], max_shard_size="100KB")
    """
)


def test_concurrent_saves_end_with_one_complete_model(tmp_path) -> None:
    target = tmp_path / "m"
    procs = [start_python_code(_CONCURRENT_SAVE, str(target), dim, "4") for dim in ("600", "900")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    from zoo_core.sources.verify import verify_directory

    assert verify_directory(target) == []
    model = zoo_core.load_model(target)
    assert model.config.input_dim in (600, 900)
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_sharded_files_respect_the_umask(tmp_path) -> None:
    old = os.umask(0o002)
    try:
        path = zoo_core.save_model(_big_rnn(), tmp_path / "m", max_shard_size="40KB")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o775
    for entry in path.iterdir():
        assert stat.S_IMODE(os.stat(entry).st_mode) == 0o664, entry.name


def test_save_refuses_a_non_zoo_directory_through_the_cli(tmp_path) -> None:
    target = tmp_path / "hf"
    save_file({"w": torch.zeros(1)}, tmp_path / "x.safetensors")
    target.mkdir()
    (target / "config.json").write_text('{"model_type": "bert"}')
    result = run_zoo("save", "linear_regression", str(target))
    assert result.returncode == 1
    assert "refusing to write into" in result.stderr
    assert os.listdir(target) == ["config.json"]


def test_leftover_temporary_directory_is_cleaned_by_the_next_save(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    (tmp_path / ".m.zoo-tmp-dead").mkdir()
    (tmp_path / ".m.zoo-tmp-dead" / "model.safetensors").write_bytes(b"half")
    zoo_core.save_model(zoo_core.create_model("linear_regression", input_dim=3), target)
    assert sorted(os.listdir(tmp_path)) == ["m"]
    assert zoo_core.load_model(target).config.input_dim == 3


# Re-saving keeps the user's files (issue 8 item 2) ------------------------------------------


def test_a_resave_keeps_the_model_card_and_other_user_files(tmp_path) -> None:
    target = tmp_path / "m"
    assert run_zoo("save", "simple_cnn", str(target)).returncode == 0
    (target / "README.md").write_text("# my card\n")
    (target / "runs").mkdir()
    (target / "runs" / "train.log").write_text("epoch 1\n")
    before = json.loads((target / "config.json").read_text())["files"]
    result = run_zoo("save", "simple_cnn", str(target), "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert (target / "README.md").read_text() == "# my card\n"
    assert (target / "runs" / "train.log").read_text() == "epoch 1\n"
    assert json.loads((target / "config.json").read_text())["files"] != before
    assert "README.md" not in result.stdout  # the summary lists what the save wrote
    from zoo_core.sources.verify import verify_directory

    assert verify_directory(target) == []
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_a_resave_drops_old_shards_and_says_when_the_architecture_changes(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(_big_rnn(), target, max_shard_size="40KB")
    (target / "README.md").write_text("card")
    result = run_zoo("save", "linear_regression", str(target))
    assert result.returncode == 0, result.stderr
    assert "held a simple_rnn model; it now holds linear_regression" in result.stderr
    assert sorted(os.listdir(target)) == ["README.md", "config.json", "model.safetensors"]
    with pytest.warns(ZooWarning, match="held a linear_regression model"):
        zoo_core.save_model(zoo_core.create_model("simple_cnn"), target)
    assert (target / "README.md").read_text() == "card"
    assert zoo_core.load_model(target).config.num_classes == 10


# Only regular files inside the directory are read (issue 8 items 3, 4) ----------------------


def test_a_config_json_symlink_leaving_the_directory_is_refused_on_load_and_verify(
    tmp_path,
) -> None:
    from zoo_core.sources.verify import verify_directory

    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    outside = tmp_path / "elsewhere.json"
    os.replace(target / "config.json", outside)
    os.symlink(outside, target / "config.json")
    with pytest.raises(WeightsError, match=r"config\.json points outside the directory"):
        zoo_core.load_model(target)
    problems = [str(p) for p in verify_directory(target)]
    assert any("points outside the directory" in p for p in problems), problems
    result = run_zoo("load", str(target))
    assert result.returncode == 1 and "points outside the directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_model_files_and_check_member_refuse_links_out(tmp_path) -> None:
    from zoo_core.storage.record import check_member, model_files

    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    (target / "notes.txt").write_text("mine")
    os.symlink("notes.txt", target / "inside-link.txt")  # stays inside: fine
    (target / "runs").mkdir()
    assert model_files(target) == [
        "config.json", "inside-link.txt", "model.safetensors", "notes.txt"
    ]  # fmt: skip
    assert check_member(target, "notes.txt") == target / "notes.txt"
    assert check_member(target, "README.md") is None
    secret = tmp_path / "token"
    secret.write_text("hf_secret")
    os.symlink(secret, target / "README.md")
    with pytest.raises(WeightsError, match=r"README\.md points outside the directory"):
        check_member(target, "README.md")
    with pytest.raises(WeightsError, match="points outside the directory"):
        model_files(target)
    with pytest.raises(WeightsError, match="not a file name"):
        check_member(target, "../token")


def test_fifos_and_devices_never_hang_save_load_or_verify(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    os.unlink(target / "config.json")
    os.mkfifo(target / "config.json")
    # A FIFO config.json used to block the save while it held the parent's lock.
    result = run_zoo("save", "linear_regression", str(target))
    assert result.returncode == 1 and "refusing to write into" in result.stderr
    result = run_zoo("verify", str(target))
    assert result.returncode == 1 and "is a FIFO, not a regular file" in result.stdout
    with pytest.raises(WeightsError, match="is a FIFO, not a regular file"):
        zoo_core.load_model(target)
    other = tmp_path / "n"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), other)
    os.unlink(other / "model.safetensors")
    os.mkfifo(other / "model.safetensors")
    result = run_zoo("verify", str(other))
    assert result.returncode == 1 and "is a FIFO" in result.stdout
    with pytest.raises(WeightsError, match="is a FIFO"):
        zoo_core.load_model(other)


def test_config_json_sizes_are_capped_before_reading(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    with open(target / "config.json", "r+b") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: big on paper, nothing to read
    with pytest.raises(WeightsError, match="zoo reads at most 1048576 bytes of a config"):
        zoo_core.load_model(target)
    os.unlink(target / "config.json")
    os.symlink("/dev/zero", target / "config.json")
    with pytest.raises(WeightsError, match=r"config\.json points outside the directory"):
        zoo_core.load_model(target)


def test_a_save_waiting_on_a_held_lock_gives_up_and_names_the_holder(tmp_path) -> None:
    import fcntl

    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running save of a sibling holds
        result = run_zoo("save", "linear_regression", str(tmp_path / "m"), ZOO_LOCK_TIMEOUT="0.5")
    finally:
        os.close(fd)
    assert result.returncode == 1, result.stderr
    assert f"held its lock for over 0.5 s (pid {os.getpid()}:" in result.stderr
    assert "ZOO_LOCK_TIMEOUT" in result.stderr
    assert not (tmp_path / "m").exists()


# Filesystem refusals are plain errors (issue 8 item 10) -------------------------------------

_LIMITED_SAVE = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    from zoo_core.cli import main
    main(["save", "linear_regression", sys.argv[1], "--set", "input_dim=512",
          "--set", "output_dim=512"])
    """
)


def test_a_write_the_filesystem_refuses_is_a_plain_error_and_changes_nothing(tmp_path) -> None:
    target = tmp_path / "m"
    zoo_core.save_model(zoo_core.create_model("linear_regression"), target)
    before = sorted(os.listdir(target)), (target / "config.json").read_bytes()
    # A file size limit makes the write fail the way a full disk does (EFBIG, ENOSPC).
    result = run_python_code(_LIMITED_SAVE, str(target))  # the limit holds in that process only
    assert result.returncode == 1, result.stderr
    assert f"cannot save to {target}: File too large (nothing was changed)" in result.stderr
    assert "internal error" not in result.stderr
    assert (sorted(os.listdir(target)), (target / "config.json").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_save_into_a_path_through_a_file_says_which_part_is_a_file(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    result = run_zoo("save", "simple_cnn", str(tmp_path / "afile" / "sub"))
    assert result.returncode == 1
    assert f"{tmp_path / 'afile'} is a file, not a directory" in result.stderr
    assert "File exists" not in result.stderr
