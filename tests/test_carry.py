"""Pretrained weights you can carry: predictions never from random weights by chance, the
``weights`` section through save, fine-tuning and push, variants as sources of every command,
the Python catalogue and its transforms, and one rule for train and eval mode.

Everything runs on the shipped seed variants (package data: no network). Hub pushes use the
real huggingface_hub client against tests/hubserver.py, in fresh processes.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import zoo_core
from tests.conftest import run_zoo
from zoo_core.cli import cli
from zoo_core.errors import ModelNotFoundError, WeightsError
from zoo_core.hub.card import render_card
from zoo_core.pretrained.catalogue import get_variants
from zoo_core.storage.weights import read_saved

sklearn_datasets = pytest.importorskip("sklearn.datasets")

OFFLINE = {"HF_HUB_OFFLINE": "1"}
DIGITS_PIN = get_variants().resolve("simple_cnn.digits").spec.sha256


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The held-out digits, raw (0-16), as the data set stores them: (450, 8, 8)."""
    return sklearn_datasets.load_digits().images[1347:]


def invoke(*args: str) -> Any:
    """The zoo command, in-process (stdout and stderr apart)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def section(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "config.json").read_text())["weights"]


def variant_section(name: str = "simple_cnn.digits") -> dict[str, Any]:
    return zoo_core.load_model(name).weights_info


# --- 2. predictions never come from random weights by chance ---------------------------------


def test_a_bare_name_predicts_with_its_default_variant_and_says_which(digits) -> None:
    by_name = zoo_core.predict("simple_cnn", digits)
    by_variant = zoo_core.predict("simple_cnn.digits", digits)
    assert torch.equal(by_name.outputs, by_variant.outputs)
    assert by_name.rows == by_variant.rows
    assert (by_name.variant, by_name.source) == ("zoo-cnn:simple_cnn.digits", "simple_cnn.digits")
    assert by_name.random_weights is False
    x = sklearn_datasets.load_diabetes().data[331:340]
    twice = [zoo_core.predict("linear_regression", x).outputs for _ in range(2)]
    assert torch.equal(twice[0], twice[1])  # not two random inits
    assert torch.equal(twice[0], zoo_core.predict("linear_regression.diabetes", x).outputs)
    assert torch.equal(zoo_core.predict("simple_cnn", digits, pretrained="digits").outputs,
                       by_variant.outputs)  # fmt: skip


def test_a_model_without_weights_is_refused_unless_asked_for_random_ones() -> None:
    tokens = np.zeros((2, 16), dtype=np.int64)
    with pytest.raises(ModelNotFoundError, match="no pretrained weights") as info:
        zoo_core.predict("tiny_transformer", tokens)
    assert "random" in info.value.message and "pretrained=False" in info.value.hint
    result = zoo_core.predict("tiny_transformer", tokens, pretrained=False)
    assert result.random_weights is True and result.variant is None


def test_zoo_predict_on_a_bare_name(digits, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", digits[:3])
    np.save(tmp_path / "tokens.npy", np.zeros((2, 16), dtype=np.int64))
    shown = run_zoo("predict", "simple_cnn", str(tmp_path / "x.npy"), **OFFLINE)
    assert shown.returncode == 0, shown.stderr
    assert "predicting with simple_cnn.digits, the default weights of simple_cnn" in shown.stderr
    data = json.loads(run_zoo("predict", "simple_cnn", str(tmp_path / "x.npy"), "--json").stdout)
    assert data["variant"] == "zoo-cnn:simple_cnn.digits" and data["random_weights"] is False
    refused = run_zoo("predict", "tiny_transformer", str(tmp_path / "tokens.npy"))
    assert refused.returncode == 1 and "--random" in refused.stderr
    assert "Traceback" not in refused.stderr
    chosen = run_zoo("predict", "tiny_transformer", str(tmp_path / "tokens.npy"), "--random")
    assert chosen.returncode == 0, chosen.stderr
    assert "random weights (--random)" in chosen.stderr
    wrong = run_zoo("predict", "simple_cnn.digits", str(tmp_path / "x.npy"), "--random")
    assert wrong.returncode == 2 and "--random applies to model names" in wrong.stderr


def test_predict_runs_in_eval_mode_and_gives_the_model_back_as_it_was(digits) -> None:
    model = zoo_core.create_model("simple_cnn.digits")
    assert model.training
    result = zoo_core.predict(model, digits[:5])
    assert model.training  # put back
    with torch.no_grad():
        expected = model.eval()(zoo_core.preprocess(model, digits[:5]))
    assert torch.equal(result.outputs, expected)


# --- 3. metadata travels with the weights ------------------------------------------------------


def test_a_saved_variant_keeps_its_weights_section_and_predicts_the_same(
    digits, tmp_path: Path
) -> None:
    saved = zoo_core.save_model(zoo_core.load_model("simple_cnn.digits"), tmp_path / "copy")
    assert section(saved) == variant_section()  # labels, preprocessing, license, metrics, ...
    np.save(tmp_path / "raw.npy", digits)
    runs = {}
    for source in ("simple_cnn.digits", str(saved)):
        result = run_zoo("predict", source, str(tmp_path / "raw.npy"), "--json", **OFFLINE)
        assert result.returncode == 0, result.stderr
        runs[source] = json.loads(result.stdout)["predictions"]
    assert runs[str(saved)] == runs["simple_cnn.digits"]  # the same labels, the same numbers
    # The lone weights file carries the same section in its header metadata.
    lone = run_zoo("predict", str(saved / "model.safetensors"), str(tmp_path / "raw.npy"), "--json")
    assert lone.returncode == 0, lone.stderr
    assert json.loads(lone.stdout)["predictions"] == runs["simple_cnn.digits"]
    top1 = [int(row["top_k"][0]["label"]) for row in runs[str(saved)]]
    labels = sklearn_datasets.load_digits().target[1347:]
    assert round(float(np.mean(np.array(top1) == labels)), 4) == 0.9867


def test_fine_tuned_weights_keep_preprocessing_and_provenance_not_metrics(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="re-initialised"):
        tuned = zoo_core.create_model("simple_cnn.digits", num_classes=2, seed=0)
    assert tuned.weights_info["base"]["sha256"] == DIGITS_PIN
    saved = section(zoo_core.save_model(tuned, tmp_path / "tuned"))
    original = variant_section()
    assert "metrics" not in saved and "labels" not in saved and "reinitialised" not in saved
    assert saved["preprocessing"] == original["preprocessing"]
    assert saved["license"] == original["license"] and saved["dataset"] == original["dataset"]
    assert saved["base"] == {
        "name": "simple_cnn.digits",
        "publisher": "zoo-cnn",
        "sha256": DIGITS_PIN,
        "source": "package://zoo_cnn/weights/digits",
    }
    # New labels (and metrics) through the API, merged; None removes a key.
    merged = section(
        zoo_core.save_model(
            tuned,
            tmp_path / "odd-even",
            weights={"labels": ["even", "odd"], "tag": "odd-even", "training": None},
        )
    )
    assert merged["labels"] == ["even", "odd"] and merged["tag"] == "odd-even"
    assert "training" not in merged and merged["base"]["sha256"] == DIGITS_PIN
    reloaded = zoo_core.load_model(tmp_path / "odd-even")
    assert reloaded.weights_info["labels"] == ["even", "odd"]
    result = zoo_core.predict(reloaded, np.zeros((1, 8, 8)), top_k=1)
    assert result.rows[0]["top_k"][0]["label"] in ("even", "odd")
    with pytest.raises(WeightsError, match="labels"):
        zoo_core.save_model(tuned, tmp_path / "bad", weights={"labels": "even,odd"})
    assert not (tmp_path / "bad").exists()  # checked before anything is written


def test_weights_changed_after_loading_drop_their_metrics(tmp_path: Path) -> None:
    trained = zoo_core.load_model("simple_cnn.digits")
    untouched = section(zoo_core.save_model(trained, tmp_path / "same"))
    assert "metrics" in untouched and "base" not in untouched
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    trained.train()
    loss = trained(torch.randn(4, 1, 8, 8)).sum()
    loss.backward()
    optimizer.step()  # one step of training: the recorded accuracy no longer applies
    after = section(zoo_core.save_model(trained, tmp_path / "trained"))
    assert "metrics" not in after and after["labels"] == untouched["labels"]
    assert after["base"]["sha256"] == DIGITS_PIN
    # A model saved from such a directory, changed again, keeps the first base.
    again = zoo_core.load_model(tmp_path / "trained")
    with torch.no_grad():
        again.fc.bias.add_(1.0)
    assert section(zoo_core.save_model(again, tmp_path / "again"))["base"] == after["base"]
    # A fresh model carries nothing; weights= makes it a variant, as before.
    fresh = zoo_core.save_model(zoo_core.create_model("simple_cnn"), tmp_path / "fresh")
    assert "weights" not in json.loads((fresh / "config.json").read_text())


def test_the_card_carries_what_still_applies(tmp_path: Path) -> None:
    copy = zoo_core.save_model(zoo_core.load_model("simple_cnn.digits"), tmp_path / "copy")
    card = render_card(read_saved(copy), "me/digits")
    header = card.split("---")[1]
    assert "license: cc-by-4.0" in header and "- '7'" in header
    assert "model-index:" in header and "value: 0.9867" in header
    with pytest.warns(UserWarning):
        tuned = zoo_core.create_model("simple_cnn.digits", num_classes=2, seed=0)
    derived = zoo_core.save_model(tuned, tmp_path / "tuned")
    card = render_card(read_saved(derived), "me/two")
    header = card.split("---")[1]
    assert "license: cc-by-4.0" in header
    assert "model-index" not in header and "labels" not in header
    assert f"Derived from `simple_cnn.digits` (its config.json sha256 `{DIGITS_PIN}`)" in card


# --- 4. variants are sources everywhere ----------------------------------------------------------


def test_zoo_save_a_variant_and_a_fine_tuned_one(tmp_path: Path) -> None:
    result = invoke("save", "simple_cnn.digits", str(tmp_path / "digits"))
    assert result.exit_code == 0, result.output
    assert "saved simple_cnn.digits to" in result.output
    copy = zoo_core.load_model(tmp_path / "digits")
    variant = zoo_core.load_model("simple_cnn.digits")
    assert copy.weights_info == variant.weights_info
    for key, tensor in variant.state_dict().items():
        assert torch.equal(copy.state_dict()[key], tensor), key
    tuned = invoke(
        "save", "simple_cnn.digits", str(tmp_path / "two"), "--set", "num_classes=2", "--seed", "0"
    )
    assert tuned.exit_code == 0, tuned.output
    assert section(tmp_path / "two")["base"]["sha256"] == DIGITS_PIN
    refused = run_zoo("save", str(tmp_path / "digits"), str(tmp_path / "again"))
    assert refused.returncode == 2 and "NAME.TAG" in refused.stderr


def test_zoo_verify_and_info_take_a_variant() -> None:
    verified = invoke("verify", "simple_cnn.digits")
    assert verified.exit_code == 0, verified.output
    assert "ok: simple_cnn.digits (structure and content hashes checked)" in verified.output
    data = json.loads(invoke("verify", "simple_rnn.digits", "--json").output)
    assert data["ok"] is True and data["problems"] == []
    info = invoke("info", "linear_regression.diabetes")
    assert info.exit_code == 0, info.output
    assert "linear_regression.diabetes" in info.output and "r2" in info.output
    assert "tensors       44 B" in info.output and "files" in info.output


# --- 5. the Python catalogue and transforms -------------------------------------------------------


def test_list_models_lists_variants() -> None:
    assert zoo_core.list_models(pretrained=True) == [
        "linear_regression.diabetes",
        "simple_cnn.digits",
        "simple_rnn.digits",
    ]
    assert zoo_core.list_models("simple_*", pretrained=True) == [
        "simple_cnn.digits",
        "simple_rnn.digits",
    ]
    assert zoo_core.list_models("simple_cnn", pretrained=True) == ["simple_cnn.digits"]
    assert zoo_core.list_models("*.diabetes", pretrained=True) == ["linear_regression.diabetes"]
    assert zoo_core.list_models("tiny_*", pretrained=True) == []
    assert zoo_core.list_models("simple_*") == ["simple_cnn", "simple_rnn"]


def test_the_record_of_a_variant() -> None:
    info = zoo_core.get_pretrained("simple_cnn.digits")
    assert isinstance(info, zoo_core.PretrainedInfo)
    assert (info.name, info.model, info.tag, info.default) == (
        "simple_cnn.digits",
        "simple_cnn",
        "digits",
        True,
    )
    assert info.labels == tuple(str(i) for i in range(10))
    assert info.metrics[0] == zoo_core.pretrained.info.Metric("accuracy", 0.9867, "test")
    assert info.headline == "accuracy 0.9867 (test)"
    assert info.parameters == 5450 and info.tensor_bytes == 5450 * 4
    shipped = Path(zoo_core.__file__).parents[1] / "plugins/zoo-cnn/zoo_cnn/weights/digits"
    assert info.file_bytes == (shipped / "model.safetensors").stat().st_size
    assert info.license == "CC-BY-4.0" and info.sha256 == DIGITS_PIN and info.status == "ok"
    assert info.preprocessing["reshape"] == [1, 8, 8] and info.head == ("fc",)
    assert info.config["channels"] == 32
    assert zoo_core.get_pretrained("simple_cnn") == info  # the default variant
    assert json.loads(json.dumps(info.as_dict()))["labels"][3] == "3"
    with pytest.raises(ModelNotFoundError, match="no pretrained weights"):
        zoo_core.get_pretrained("tiny_transformer")


def test_the_catalogue_needs_no_torch() -> None:
    code = (
        "import sys, zoo_core\n"
        "assert zoo_core.list_models(pretrained=True)\n"
        "info = zoo_core.get_pretrained('simple_rnn.digits')\n"
        "assert info.labels and info.preprocessing\n"
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


class RawDigits(torch.utils.data.Dataset):
    """A data set as a user writes one: raw samples, and the transform it is given."""

    def __init__(self, images: np.ndarray, transform: Any) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.images[i])


@pytest.mark.parametrize("name", ["simple_cnn.digits", "simple_rnn.digits"])
def test_transforms_are_what_predict_applies(name, digits) -> None:
    transforms = zoo_core.get_pretrained(name).transforms()
    model = zoo_core.load_model(name)
    batch = transforms(digits)
    assert torch.equal(batch, zoo_core.preprocess(model, digits))
    assert torch.equal(batch, transforms(digits.reshape(len(digits), 64)))  # flat rows too
    one = transforms(digits[0])
    assert one.shape == batch.shape[1:] and torch.equal(one, batch[0])
    assert torch.equal(transforms(torch.as_tensor(digits)), batch)
    with torch.no_grad():
        assert torch.equal(model(batch), zoo_core.predict(model, digits).outputs)
    assert pickle.loads(pickle.dumps(transforms)) == transforms


def test_transforms_in_a_data_loader_with_worker_processes(digits) -> None:
    transforms = zoo_core.get_pretrained("simple_cnn.digits").transforms()
    loader = torch.utils.data.DataLoader(
        RawDigits(digits[:64], transforms), batch_size=16, num_workers=2
    )
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(16, 1, 8, 8)] * 4
    assert torch.equal(torch.cat(batches), transforms(digits[:64]))


def test_transforms_take_images(digits, tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    picture = np.kron(255 - digits[0] * 255 / 16, np.ones((4, 4))).astype(np.uint8)
    image_module.fromarray(picture, mode="L").save(tmp_path / "digit.png")
    transforms = zoo_core.get_pretrained("simple_cnn.digits").transforms()
    with image_module.open(tmp_path / "digit.png") as opened:
        from_image = transforms(opened)
    model = zoo_core.load_model("simple_cnn.digits")
    from_file = zoo_core.predict(model, [tmp_path / "digit.png"], top_k=1)
    assert from_image.shape == (1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(from_image[None]), from_file.outputs)
    with pytest.raises(zoo_core.UsageError, match="no image preprocessing"):
        zoo_core.get_pretrained("simple_rnn.digits").transforms()(image_module.new("L", (8, 8)))


# --- 6. one rule for train and eval mode ---------------------------------------------------------


def test_create_model_trains_and_load_model_evaluates(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        tuned = zoo_core.create_model("simple_cnn.digits", num_classes=3)
    created = [
        zoo_core.create_model("simple_cnn"),
        zoo_core.create_model("simple_cnn", seed=0),
        zoo_core.create_model("simple_cnn", pretrained=True),
        zoo_core.create_model("simple_cnn", pretrained="digits"),
        zoo_core.create_model("simple_cnn.digits"),
        tuned,
    ]
    assert [m.training for m in created] == [True] * len(created)
    saved = zoo_core.save_model(created[1], tmp_path / "cnn")
    loaded = [
        zoo_core.load_model("simple_cnn"),
        zoo_core.load_model("simple_cnn.digits"),
        zoo_core.load_model(saved),
        zoo_core.load_model(saved / "model.safetensors"),
    ]
    assert [m.training for m in loaded] == [False] * len(loaded)


# --- pushing: the real client against the test Hub --------------------------------------------


@pytest.mark.slow
def test_zoo_push_a_variant_then_nothing_new(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hubserver import client_env, start_server_subprocess, stop_server_subprocess

    url, process = start_server_subprocess(tmp_path / "hub", token=None, user="zoo")
    env = client_env(url, tmp_path / "home")
    try:
        first = run_zoo("push", "simple_cnn.digits", "zoo/digits", **env)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("pushed simple_cnn.digits to hf://zoo/digits@")
        commit = first.stdout.split("@")[1].split()[0]
        again = run_zoo("push", "simple_cnn.digits", "zoo/digits", "-m", "again", **env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines() == [
            f"nothing to push: hf://zoo/digits@{commit} already holds simple_cnn.digits",
            "  (no commit was made, so --message was not used)",
        ]
        assert "No files have been modified" not in again.stderr
        pulled = run_zoo("pull", "zoo/digits", **env)
        assert pulled.returncode == 0, pulled.stderr
        directory = Path(pulled.stdout.splitlines()[0])
        card = (directory / "README.md").read_text()
        assert "license: cc-by-4.0" in card and "model-index:" in card and "- '9'" in card
        # The pinned bytes went up as they are: the Hub copy has the variant's own config.json.
        import hashlib

        assert hashlib.sha256((directory / "config.json").read_bytes()).hexdigest() == DIGITS_PIN
        tuned = run_zoo(
            "push", "simple_cnn.digits", "zoo/two", "--set", "num_classes=2", "--seed", "0", **env
        )
        assert tuned.returncode == 0, tuned.stderr
        assert "simple_cnn.digits (with a new config)" in tuned.stdout
        assert "re-initialised fc.bias, fc.weight" in tuned.stderr
    finally:
        stop_server_subprocess(process)
