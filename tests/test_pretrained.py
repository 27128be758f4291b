"""The shipped seed variants: their recorded metrics recomputed, the least-squares fit,
``zoo list --pretrained``, ``zoo load NAME.TAG`` and ``zoo predict`` on the real test split.

The split is the documented one: the last 25% of each scikit-learn data set, in its order.
Every run sets ``HF_HUB_OFFLINE=1``: package-data variants need no network at all.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo_core
from tests.conftest import run_zoo
from tests.test_cli import imported_modules
from zoo_core.errors import MissingDependencyError, UsageError
from zoo_core.pretrained.transforms import load_input_file

sklearn_datasets = pytest.importorskip("sklearn.datasets")

DIGITS_TEST = 1347
DIABETES_TEST = 331
OFFLINE = {"HF_HUB_OFFLINE": "1"}


def recorded(model, name: str) -> float:
    return next(m["value"] for m in model.weights_info["metrics"] if m["name"] == name)


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    digits = sklearn_datasets.load_digits()
    return digits.images[DIGITS_TEST:], digits.target[DIGITS_TEST:]


@pytest.mark.parametrize("name", ["simple_cnn.digits", "simple_rnn.digits"])
def test_digits_accuracy_is_recomputed_from_the_shipped_weights(name) -> None:
    images, labels = digits_split()
    model = zoo_core.load_model(name)
    assert model.weights_info["labels"] == [str(i) for i in range(10)]
    result = zoo_core.predict(model, images, top_k=1)  # raw 0-16 values; zoo scales them
    predicted = np.array([int(row["top_k"][0]["label"]) for row in result.rows])
    accuracy = round(float((predicted == labels).mean()), 4)
    assert accuracy == recorded(model, "accuracy")
    assert accuracy >= (0.95 if "cnn" in name else 0.93)
    # The same numbers from the flat (N, 64) rows the data set also stores.
    flat = zoo_core.predict(model, images.reshape(len(images), 64), top_k=1)
    assert torch.equal(flat.outputs, result.outputs)


def test_without_the_recorded_scaling_the_digits_model_is_worse() -> None:
    images, labels = digits_split()
    model = zoo_core.load_model("simple_cnn.digits")
    with torch.no_grad():
        raw = model(torch.as_tensor(images, dtype=torch.float32).unsqueeze(1)).argmax(1).numpy()
    assert (raw == labels).mean() < recorded(model, "accuracy") - 0.05


def test_diabetes_is_the_least_squares_fit_and_its_r2_is_recomputed() -> None:
    data = sklearn_datasets.load_diabetes()
    x, y = data.data, data.target
    design = np.hstack([x[:DIABETES_TEST], np.ones((DIABETES_TEST, 1))])
    solution, *_ = np.linalg.lstsq(design, y[:DIABETES_TEST], rcond=None)
    model = zoo_core.load_model("linear_regression.diabetes")
    shipped = np.append(model.linear.weight.detach().double().numpy()[0], model.linear.bias.item())
    np.testing.assert_allclose(shipped, solution, rtol=1e-4)
    predicted = zoo_core.predict(model, x[DIABETES_TEST:]).outputs.double().numpy()[:, 0]
    test_y = y[DIABETES_TEST:]
    r2 = 1 - ((test_y - predicted) ** 2).sum() / ((test_y - test_y.mean()) ** 2).sum()
    assert round(float(r2), 4) == recorded(model, "r2")
    assert round(float(((test_y - predicted) ** 2).mean()), 2) == recorded(model, "mse")


def test_the_linear_fit_is_reproduced_by_its_script(tmp_path: Path) -> None:
    from zoo_linear.training.train_diabetes import main

    out = tmp_path / "diabetes"
    main(["--out", str(out)])
    fresh = zoo_core.load_model(out)
    shipped = zoo_core.load_model("linear_regression.diabetes")
    for key, tensor in shipped.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], tensor, rtol=1e-5, atol=0)
    assert fresh.weights_info["metrics"] == shipped.weights_info["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "bar"),
    [("zoo_cnn.training.train_digits", 0.95), ("zoo_rnn.training.train_digits", 0.93)],
)
def test_the_digits_training_scripts_reach_their_bars(module, bar, tmp_path: Path) -> None:
    out = tmp_path / "digits"
    result = subprocess.run(
        [sys.executable, "-m", module, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "test accuracy" in result.stdout
    assert recorded(zoo_core.load_model(out), "accuracy") >= bar


def test_list_pretrained_lists_the_seed_variants_without_torch() -> None:
    result = run_zoo("list", "--pretrained", "--json", PYTHONPROFILEIMPORTTIME="1", **OFFLINE)
    assert result.returncode == 0, result.stderr
    modules = imported_modules(result)
    assert "click" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}
    assert "huggingface_hub" not in modules  # nothing here is on the Hub
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert sorted(rows) == ["linear_regression.diabetes", "simple_cnn.digits", "simple_rnn.digits"]
    cnn = rows["simple_cnn.digits"]
    assert cnn["metric"]["name"] == "accuracy" and cnn["metric"]["value"] >= 0.95
    assert cnn["parameters"] == 32 * 9 + 32 + 32 * 16 * 10 + 10
    shipped = Path(zoo_core.__file__).parents[1] / "plugins/zoo-cnn/zoo_cnn/weights/digits"
    assert cnn["bytes"] == (shipped / "model.safetensors").stat().st_size
    assert cnn["license"] == "CC-BY-4.0" and cnn["default"] is True
    table = run_zoo("list", "--pretrained", "simple_*", **OFFLINE)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "METRIC", "PARAMS", "FLOPS", "FILES", "LICENSE", "SUMMARY"]
    assert [line.split()[0] for line in lines[1:3]] == ["simple_cnn.digits", "simple_rnn.digits"]


def test_zoo_load_a_variant_offline() -> None:
    result = run_zoo("load", "simple_cnn.digits", "--json", **OFFLINE)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source_kind"] == "variant"
    assert data["variant"] == "zoo-cnn:simple_cnn.digits"
    assert data["input_shape"] == [1, 1, 8, 8] and data["output_shape"] == [1, 10]
    wrong = run_zoo("load", "simple_cnn.digits", "--set", "channels=4", **OFFLINE)
    assert wrong.returncode == 1 and "conv1.weight" in wrong.stderr


def test_zoo_predict_on_the_test_split_gives_the_recorded_accuracy(tmp_path: Path) -> None:
    images, labels = digits_split()
    np.save(tmp_path / "digits.npy", images)
    inputs = str(tmp_path / "digits.npy")
    result = run_zoo("predict", "simple_cnn.digits", inputs, "--json", "--top-k", "3", **OFFLINE)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = data["predictions"]
    assert len(rows) == len(labels) and len(rows[0]["top_k"]) == 3
    predicted = np.array([int(r["top_k"][0]["label"]) for r in rows])
    model = zoo_core.load_model("simple_cnn.digits")
    assert round(float((predicted == labels).mean()), 4) == recorded(model, "accuracy")
    assert rows[0]["input"] == "digits.npy[0]"
    np.save(tmp_path / "two.npy", images[:2])
    text = run_zoo("predict", "simple_cnn.digits", str(tmp_path / "two.npy"), "--top-k", "2")
    first = text.stdout.splitlines()[0]
    assert re.fullmatch(r"two\.npy\[0\]: \d 0\.\d{3}, \d 0\.\d{3}", first), first


def test_zoo_predict_summarises_a_regression_output(tmp_path: Path) -> None:
    x = sklearn_datasets.load_diabetes().data[DIABETES_TEST : DIABETES_TEST + 2]
    np.save(tmp_path / "x.npy", x)
    result = run_zoo("predict", "linear_regression.diabetes", str(tmp_path / "x.npy"), "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["predictions"]
    assert [r["shape"] for r in rows] == [[1], [1]]
    expected = zoo_core.predict("linear_regression.diabetes", x).outputs[:, 0].tolist()
    assert [r["values"][0] for r in rows] == [round(v, 6) for v in expected]


def test_zoo_predict_says_what_is_wrong_with_inputs(tmp_path: Path) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros((2, 7)))
    wrong = run_zoo("predict", "simple_cnn.digits", str(tmp_path / "wrong.npy"))
    assert wrong.returncode == 2
    assert "each input has 7 values" in wrong.stderr and "Traceback" not in wrong.stderr


def test_input_files_are_checked_before_use(tmp_path: Path) -> None:
    pre = zoo_core.load_model("simple_rnn.digits").weights_info["preprocessing"]
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match=r"not a readable \.npy array"):
        load_input_file(tmp_path / "objects.npy", pre)  # never unpickled
    (tmp_path / "notes.txt").write_text("1 2 3")
    with pytest.raises(UsageError, match=r"\.npy arrays and image files"):
        load_input_file(tmp_path / "notes.txt", pre)
    with pytest.raises(UsageError, match="no such input file"):
        load_input_file(tmp_path / "nope.npy", pre)
    (tmp_path / "digit.png").write_bytes(b"not really")
    with pytest.raises(UsageError, match="declares no image preprocessing"):
        load_input_file(tmp_path / "digit.png", pre)


def test_images_are_read_as_the_data_set_stores_them(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    images, labels = digits_split()
    # Dark ink on white paper, 4x larger: what a scan or a drawing looks like.
    picture = np.kron(255 - images[0] * 255 / 16, np.ones((4, 4))).astype(np.uint8)
    image_module.fromarray(picture, mode="L").save(tmp_path / "digit.png")
    result = zoo_core.predict("simple_cnn.digits", [tmp_path / "digit.png"], top_k=1)
    assert result.rows[0]["input"] == "digit.png"
    assert result.rows[0]["top_k"][0]["label"] == str(labels[0])


def test_predict_in_python_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match="top_k"):
        zoo_core.predict("simple_cnn.digits", np.zeros((1, 8, 8)), top_k=0)
    with pytest.raises(UsageError, match="each input has 9 values") as info:
        zoo_core.predict("simple_cnn.digits", np.zeros((8, 9)))
    assert "leading batch dimension" in info.value.hint
    fresh = zoo_core.create_model("linear_regression", input_dim=3)
    out = zoo_core.predict(fresh, np.ones((2, 3)))  # no weights section: inputs as given
    assert out.rows[0]["shape"] == [1] and fresh.weights_info is None


def test_images_without_pillow_say_which_extra_to_install(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    pre = zoo_core.load_model("simple_cnn.digits").weights_info["preprocessing"]
    with pytest.raises(MissingDependencyError, match="needs Pillow") as info:
        load_input_file(tmp_path / "digit.png", pre)
    assert "zoo-core[images]" in info.value.hint
    assert info.value.exit_code == 1  # the environment lacks an extra: not a usage mistake
