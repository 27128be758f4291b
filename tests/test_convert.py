"""zoo convert: legacy state-dict checkpoints in, with torch.load(weights_only=True) only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import zoo_core
from tests.conftest import run_zoo
from zoo_core.errors import WeightsError
from zoo_core.sources.convert import convert_checkpoint


def _equal_to(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], v) for k, v in state.items())


def test_a_seed_state_dict_converts_through_the_cli(tmp_path) -> None:
    # The seed's own class would be torch.nn modules with the same parameter names.
    seed = torch.nn.Sequential()
    seed.conv1 = torch.nn.Conv2d(3, 16, 3, padding=1)
    seed.fc = torch.nn.Linear(16 * 14 * 14, 4)
    torch.save(seed.state_dict(), tmp_path / "seed.pt")
    out = tmp_path / "cnn"
    args = ["--arch", "simple_cnn", "--set", "num_classes=4", "-o", str(out)]
    result = run_zoo("convert", str(tmp_path / "seed.pt"), *args)
    assert result.returncode == 0, result.stderr
    assert f"converted {tmp_path / 'seed.pt'} to {out}" in result.stdout
    model = zoo_core.load_model(out)
    _equal_to(model, seed.state_dict())
    assert run_zoo("verify", str(out)).returncode == 0


def test_wrapped_and_data_parallel_checkpoints(tmp_path) -> None:
    state = zoo_core.create_model("linear_regression", input_dim=3, seed=0).state_dict()
    wrapped = {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(wrapped, tmp_path / "ckpt.pth")
    path = convert_checkpoint(
        tmp_path / "ckpt.pth", "linear_regression", tmp_path / "m", overrides={"input_dim": 3}
    )
    _equal_to(zoo_core.load_model(path), state)


def test_a_pickled_model_is_refused_and_never_unpickled(tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save(_Payload(str(marker)), evil)
    result = run_zoo("convert", str(evil), "--arch", "linear_regression", "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "needs full unpickling, which zoo refuses" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "o").exists()
    whole = tmp_path / "whole.pt"
    torch.save(torch.nn.Linear(1, 1), whole)
    with pytest.raises(WeightsError, match="needs full unpickling"):
        convert_checkpoint(whole, "linear_regression", tmp_path / "o")


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_mismatches_name_the_keys_and_write_nothing(tmp_path) -> None:
    torch.save({"linear.weight": torch.zeros(2, 5), "extra": torch.zeros(1)}, tmp_path / "c.pt")
    with pytest.raises(WeightsError) as info:
        convert_checkpoint(tmp_path / "c.pt", "linear_regression", tmp_path / "o")
    text = str(info.value)
    assert "missing linear.bias" in text and "unexpected extra" in text
    assert "linear.weight [2, 5] (model expects [1, 1])" in text
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a checkpoint", "not a readable PyTorch checkpoint"), (None, "holds a list")],
)
def test_files_that_are_not_state_dicts(content, message, tmp_path) -> None:
    path = tmp_path / "c.pt"
    if content is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    result = run_zoo("convert", str(path), "--arch", "linear_regression", "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert message in result.stderr


def _unpickling_calls(tree: ast.AST) -> list[ast.Call]:
    names = {("torch", "load"), ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler")}
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and (node.func.value.id, node.func.attr) in names
    ]


def test_only_the_conversion_ever_unpickles() -> None:
    root = Path(zoo_core.__file__).parent
    calls = {}
    for path in sorted(root.rglob("*.py")):
        found = _unpickling_calls(ast.parse(path.read_text()))
        if found:
            calls[path.name] = found
    assert list(calls) == ["convert.py"]
    (call,) = calls["convert.py"]
    options = {k.arg: k.value for k in call.keywords}
    assert isinstance(options["weights_only"], ast.Constant) and options["weights_only"].value


# Hostile checkpoints (issue 8 items 6, 10, 11) ----------------------------------------------


def test_torch_2_13_unpickling_refusals_are_said_plainly(tmp_path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "x": _Payload(str(marker))}, evil)
    result = run_zoo("convert", str(evil), "--arch", "linear_regression", "-o", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "needs full unpickling, which zoo refuses: it names " in result.stderr
    assert "zoo will not unpickle it" in result.stderr
    # torch's own advice (rerun with weights_only=False) contradicts zoo's: never repeated.
    assert "weights_only" not in result.stderr.replace("weights_only=True", "")
    assert "will likely succeed" not in result.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_a_checkpoint_that_unpacks_far_beyond_its_size_is_refused_before_reading(
    tmp_path,
) -> None:
    import zipfile

    bomb = tmp_path / "bomb.pt"
    plain = tmp_path / "plain.pt"
    torch.save({"linear.weight": torch.zeros(1, 1), "linear.bias": torch.zeros(1)}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("bomb/data/big", b"\0" * (80 * 1024 * 1024))  # deflates to ~80 KB
    assert bomb.stat().st_size < 1024 * 1024
    with pytest.raises(WeightsError, match=r"unpacks to 8.* bytes from .*; zoo allows at most"):
        convert_checkpoint(bomb, "linear_regression", tmp_path / "o")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda w: w.to_sparse(), "sparse tensors"),
        (lambda w: w.to(torch.int64), "linear.weight int64 (model expects float)"),
        (lambda w: w.to(torch.uint32), "linear.weight uint32 (model expects float)"),
        (lambda w: w.to(torch.complex64), "linear.weight complex64 (model expects float)"),
        (lambda w: w.to(torch.float64), "mixed floating dtypes (float32, float64)"),
    ],
)
def test_tensors_the_architecture_cannot_use_are_refused_by_convert(
    change, message, tmp_path
) -> None:
    state = zoo_core.create_model("linear_regression", input_dim=3, seed=0).state_dict()
    state["linear.weight"] = change(state["linear.weight"])
    torch.save(state, tmp_path / "c.pt")
    result = run_zoo(
        "convert", str(tmp_path / "c.pt"), "--arch", "linear_regression",
        "--set", "input_dim=3", "-o", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "internal error" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_strided_views_convert_into_a_loadable_directory(tmp_path) -> None:
    state = zoo_core.create_model("linear_regression", input_dim=3, output_dim=4).state_dict()
    state["linear.weight"] = torch.randn(12).as_strided((4, 3), (1, 1))
    state["linear.bias"] = torch.randn(1).expand(4)
    torch.save(state, tmp_path / "c.pt")
    path = convert_checkpoint(
        tmp_path / "c.pt", "linear_regression", tmp_path / "o",
        overrides={"input_dim": 3, "output_dim": 4},
    )  # fmt: skip
    _equal_to(zoo_core.load_model(path), state)
