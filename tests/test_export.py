"""``zoo export`` (issue 20 item 1): every bundled model and variant exports to pt2 and ONNX,
verified against eager, and the files run in plain torch / onnxruntime without zoo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo_core
from tests.conftest import run_zoo
from tests.test_kit import fixture_env
from zoo_core.deploy.exporting import export_model
from zoo_core.errors import ExportError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MODELS = ["linear_regression", "simple_cnn", "simple_rnn", "tiny_transformer"]
VARIANTS = ["linear_regression.diabetes", "simple_cnn.digits", "simple_rnn.digits"]
SOURCES = MODELS + VARIANTS

# Runs every exported file with torch alone, at batch sizes the trace never saw, on inputs
# made from the shapes recorded in the file; saves inputs and outputs for the test to check.
PLAIN_TORCH = """
import json, sys, torch
torch.manual_seed(0)
results = {}
for path in sys.argv[2:]:
    extra = {"zoo.json": ""}
    program = torch.export.load(path, extra_files=extra).module()
    meta = json.loads(extra["zoo.json"])
    for batch in (1, 5):
        inputs = {}
        for spec in meta["inputs"]:
            shape = [batch if d == "batch" else d for d in spec["shape"]]
            dtype = getattr(torch, spec["dtype"])
            if dtype == torch.bool:
                inputs[spec["name"]] = torch.ones(shape, dtype=dtype)
            elif dtype.is_floating_point:
                inputs[spec["name"]] = torch.randn(shape, dtype=dtype)
            else:
                inputs[spec["name"]] = torch.randint(0, 2, shape, dtype=dtype)
        if meta["inputs_by"] == "keyword":
            results[(path, batch)] = (inputs, program(**inputs))
        else:
            results[(path, batch)] = (inputs, program(*inputs.values()))
leaked = sorted(m for m in sys.modules if m.startswith(("zoo_core", "zoo_cnn", "zoo_rnn")))
torch.save({"results": results, "leaked": leaked}, sys.argv[1])
"""

# The same with onnxruntime and numpy only: not even torch.
ONNXRUNTIME = """
import json, sys, numpy as np, onnx, onnxruntime
rng = np.random.default_rng(0)
out = {}
for path in sys.argv[1:]:
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        feed = {}
        for spec in json.loads(props["zoo.json"])["inputs"]:
            shape = [batch if d == "batch" else d for d in spec["shape"]]
            if spec["dtype"] == "bool":
                feed[spec["name"]] = np.ones(shape, dtype=bool)
            elif spec["dtype"].startswith("float"):
                feed[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
            else:
                feed[spec["name"]] = rng.integers(0, 2, shape).astype(spec["dtype"])
        outputs = session.run(None, feed)
        out[f"{path}@{batch}"] = {
            "inputs": {k: v.tolist() for k, v in feed.items()},
            "outputs": [o.tolist() for o in outputs],
            "names": [i.name for i in session.get_inputs()],
            "dims": [i.shape for i in session.get_inputs()],
        }
leaked = sorted(m for m in sys.modules if m.startswith(("torch", "zoo_core")))
print(json.dumps({"runs": out, "leaked": leaked}))
"""


def eager(source: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """What zoo's own model gives on ``inputs`` (named as forward's parameters)."""
    with torch.no_grad():
        return zoo_core.load_model(source)(**inputs)


@pytest.fixture(scope="module")
def pt2_exports(tmp_path_factory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("pt2")
    return {source: export_model(source, out / f"{source}.pt2") for source in SOURCES}


@pytest.mark.slow
def test_every_bundled_model_and_variant_exports_to_pt2(pt2_exports) -> None:
    for source, report in pt2_exports.items():
        assert report.format == "pt2" and report.path.is_file(), source
        assert report.dynamic_batch and report.batch_sizes == [2, 3], source
        assert report.verified_with == ["torch.export.load"]
        assert report.max_abs_diff <= report.tolerance, source
        assert report.inputs[0]["shape"][0] == "batch"
        # Only the file: no staging directory left beside it.
        assert sorted(p.name for p in report.path.parent.iterdir()) == sorted(
            f"{s}.pt2" for s in SOURCES
        )


@pytest.mark.slow
def test_pt2_exports_run_in_plain_torch_without_zoo(pt2_exports, tmp_path) -> None:
    saved = tmp_path / "runs.pt"
    files = [str(pt2_exports[s].path) for s in [*VARIANTS, "tiny_transformer"]]
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_TORCH, str(saved), *files],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    data = torch.load(saved, weights_only=True)
    assert data["leaked"] == []
    for variant in VARIANTS:  # the variants' weights are known: compare with zoo's eager run
        path = str(pt2_exports[variant].path)
        for batch in (1, 5):
            inputs, got = data["results"][(path, batch)]
            assert got.shape[0] == batch
            torch.testing.assert_close(got, eager(variant, inputs), rtol=1e-4, atol=1e-5)
    tt_inputs, tt_out = data["results"][(files[-1], 5)]
    assert set(tt_inputs) == {"x", "mask"} and tt_out.shape == (5, 2)


def onnx_outside_zoo(paths: list[Path], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", ONNXRUNTIME, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["leaked"] == []
    return data["runs"]


def test_a_variant_exports_to_onnx_with_its_metadata(tmp_path) -> None:
    report = export_model("simple_cnn.digits", tmp_path / "digits.onnx")
    assert report.format == "onnx" and report.verified_with == ["torch.export", "onnxruntime"]
    assert 0 < report.max_abs_diff <= report.tolerance
    model = onnx.load(report.path)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["zoo.labels"]) == [str(i) for i in range(10)]
    assert json.loads(props["zoo.preprocessing"])["mean"] == [0.305726]
    provenance = json.loads(props["zoo.provenance"])
    assert provenance["variant"] == "zoo-cnn:simple_cnn.digits"
    assert provenance["license"] == "CC-BY-4.0" and "test_split" in provenance["dataset"]
    meta = json.loads(props["zoo.json"])
    assert (meta["architecture"], meta["plugin"], meta["config"]["channels"]) == (
        "simple_cnn",
        "zoo-cnn",
        32,
    )
    runs = onnx_outside_zoo([report.path], tmp_path)
    run = runs[f"{report.path}@5"]
    assert run["names"] == ["x"] and run["dims"] == [["batch", 1, 8, 8]]
    got = torch.tensor(run["outputs"][0])
    expected = eager("simple_cnn.digits", {"x": torch.tensor(run["inputs"]["x"])})
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_every_bundled_model_and_variant_exports_to_onnx(tmp_path) -> None:
    reports = {s: export_model(s, tmp_path / f"{s}.onnx") for s in SOURCES}
    for source, report in reports.items():
        assert report.verified_with == ["torch.export", "onnxruntime"], source
        assert report.max_abs_diff <= report.tolerance, source
    runs = onnx_outside_zoo([r.path for r in reports.values()], tmp_path)
    for variant in VARIANTS:
        path = reports[variant].path
        for batch in (1, 5):
            run = runs[f"{path}@{batch}"]
            inputs = {k: torch.tensor(v) for k, v in run["inputs"].items()}
            got = torch.tensor(run["outputs"][0])
            torch.testing.assert_close(got, eager(variant, inputs), rtol=1e-4, atol=1e-3)
    tt = runs[f"{reports['tiny_transformer'].path}@5"]
    assert tt["names"] == ["x", "mask"] and tt["dims"] == [["batch", 16], ["batch", 16]]


@pytest.mark.slow
def test_tuple_and_dict_inputs_export_with_their_names(fixture_plugins, tmp_path) -> None:
    fixture_plugins("multi_input_plugin")
    pair = export_model("pair_regressor", tmp_path / "pair.pt2")
    assert [i["name"] for i in pair.inputs] == ["left", "right"]
    program = torch.export.load(pair.path).module()
    assert program(torch.randn(7, 6), torch.randn(7, 4)).shape == (7, 3)
    tagged = export_model("tagged_regressor", tmp_path / "tagged.onnx")
    assert [(i["name"], i["dtype"]) for i in tagged.inputs] == [("x", "float32"), ("tag", "int64")]
    graph = onnx.load(tagged.path).graph
    assert [i.name for i in graph.input] == ["x", "tag"]
    assert graph.input[1].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert "onnxruntime" in tagged.verified_with
    pair_onnx = export_model("pair_regressor", tmp_path / "pair.onnx")
    assert [i.name for i in onnx.load(pair_onnx.path).graph.input] == ["left", "right"]


def test_data_dependent_control_flow_fails_naming_the_operation(fixture_plugins, tmp_path):
    fixture_plugins("deploy_plugin")
    with pytest.raises(ExportError) as info:
        export_model("branchy_export", tmp_path / "b.pt2")
    err = info.value
    assert err.model == "branchy_export"
    assert err.operation == "`if h.sum() > 0:` (deploy_models.py:46, in forward)"
    assert "cannot export branchy_export with torch.export" in err.message
    assert "torch.cond" in err.hint and "torch.export says:" in err.hint
    assert list(tmp_path.iterdir()) == []  # nothing written, no staging left


def test_a_missing_onnx_extra_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # not importable, as if not installed
    with pytest.raises(ExportError) as info:
        export_model("linear_regression", tmp_path / "lr.onnx")
    assert "ONNX export needs onnxscript, which is not installed" in info.value.message
    assert info.value.hint == 'install the onnx extra: pip install "zoo-core[onnx]"'
    assert list(tmp_path.iterdir()) == []


def test_an_export_beyond_the_tolerance_fails_naming_the_difference(tmp_path) -> None:
    with pytest.raises(ExportError) as info:
        export_model("simple_cnn.digits", tmp_path / "d.onnx", tolerance=1e-12)
    assert "onnxruntime of simple_cnn.digits differs from eager by" in info.value.message
    assert "(tolerance 1e-12)" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_a_static_export_takes_one_batch_size(tmp_path) -> None:
    report = export_model("simple_cnn", tmp_path / "s.pt2", static=True, batch_size=4)
    assert not report.dynamic_batch and report.batch_sizes == [4]
    assert report.inputs[0]["shape"] == [4, 3, 28, 28]
    program = torch.export.load(report.path).module()
    assert program(torch.randn(4, 3, 28, 28)).shape == (4, 10)
    with pytest.raises(Exception, match="4"):
        program(torch.randn(5, 3, 28, 28))


@pytest.mark.slow
def test_zoo_export_command(tmp_path) -> None:
    out = tmp_path / "out" / "lr.pt2"  # its directory is created
    result = run_zoo("export", "linear_regression.diabetes", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "pt2" and data["path"] == str(out)
    assert data["batch_sizes"] == [2, 3] and data["max_abs_diff"] <= data["tolerance"]
    assert data["inputs"] == [{"name": "x", "shape": ["batch", 10], "dtype": "float32"}]
    assert "zoo.preprocessing" in data["metadata_keys"]
    text = run_zoo("export", "linear_regression", str(tmp_path / "lr.pt2"), "--batch-size", "1")
    assert text.returncode == 0, text.stderr
    assert "verified  with torch.export.load at batch 1 and 2: max abs difference" in text.stdout
    assert "note      built fresh from its name: the weights are random" in text.stdout
    bad = run_zoo("export", "linear_regression", str(tmp_path), "--json")
    assert bad.returncode == 2 and "is a directory" in json.loads(bad.stdout)["error"]
    env = fixture_env("deploy_plugin")
    failed = run_zoo("export", "branchy_export", str(tmp_path / "b.onnx"), **env)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith("zoo: error: cannot export branchy_export with torch.export")
    assert "first failing operation: `if h.sum() > 0:`" in failed.stderr
    assert not (tmp_path / "b.onnx").exists()
