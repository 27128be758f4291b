"""Weights variants: the hook, NAME.TAG resolution, conflicts, pins, tampering, fine-tuning.

Third-party publishers are real hook modules and packages written into ``tmp_path`` and
registered through ``ZOO_PLUGINS``; their variants are real ``save_model`` directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo_core
from tests.conftest import run_zoo
from zoo_core.errors import (
    AmbiguousModelError,
    ModelNotFoundError,
    PluginError,
    UsageError,
    WeightsError,
)
from zoo_core.plugins.registry import ZooPluginWarning, get_registry, reset_registry
from zoo_core.pretrained.catalogue import get_variants, split_variant_name
from zoo_core.sources.variant import describe_variant

SEED_VARIANTS = ["linear_regression.diabetes", "simple_cnn.digits", "simple_rnn.digits"]
SHIPPED = Path(zoo_core.__file__).resolve().parent.parent / "plugins"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Publisher:
    """Writes a hook module and a package of saved variants under ``root`` and registers it."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.modules: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.syspath_prepend(str(root))
        path = os.environ.get("PYTHONPATH", "")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(root), path) if p))

    def variant(self, package: str, tag: str, model: torch.nn.Module, **section) -> Path:
        """Save ``model`` as package data ``package/weights/tag``; return its directory."""
        pkg = self.root / package
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").touch()
        return zoo_core.save_model(model, pkg / "weights" / tag, weights={"tag": tag, **section})

    def hook(self, module: str, body: str) -> None:
        """A hook module whose ``zoo_register_weights`` returns ``body`` (an expression)."""
        code = f"""
            from zoo_core import WeightsSpec, hookimpl

            @hookimpl
            def zoo_register_weights():
                return {body}
        """
        (self.root / f"{module}.py").write_text(textwrap.dedent(code))
        self.modules.append(module)
        self.monkeypatch.setenv("ZOO_PLUGINS", ",".join(self.modules))
        reset_registry()


@pytest.fixture
def publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Publisher:
    return Publisher(tmp_path / "site", monkeypatch)


def small_cnn(seed: int = 0, **config) -> torch.nn.Module:
    return zoo_core.create_model(
        "simple_cnn", in_channels=1, image_size=8, channels=4, seed=seed, **config
    )


def spec(model: str, tag: str, source: str, digest: str, default: bool = False) -> str:
    return f"WeightsSpec({model!r}, {tag!r}, {source!r}, {digest!r}, 'test', {default})"


def shipped_spec(model: str, directory: Path) -> str:
    """A one-element list of specs for a variant saved by ``Publisher.variant``."""
    package, tag = directory.parent.parent.name, directory.name
    source = f"package://{package}/weights/{tag}"
    return "[" + spec(model, tag, source, sha256(directory / "config.json")) + "]"


def test_the_seed_plugins_register_their_variants() -> None:
    variants = get_variants()
    assert variants.problems == []
    assert [v.name for v in variants.find()] == SEED_VARIANTS
    assert [v.name for v in variants.find("simple_*")] == SEED_VARIANTS[1:]
    cnn = variants.resolve("simple_cnn.digits")
    assert (cnn.publisher.name, cnn.spec.default) == ("zoo-cnn", True)
    assert variants.resolve("zoo-cnn:simple_cnn.digits") is cnn
    assert variants.default_for(get_registry().resolve("simple_cnn")) is cnn
    row = describe_variant(cnn)
    assert row["status"] == "ok"
    assert row["metric"]["name"] == "accuracy" and row["metric"]["split"] == "test"
    assert row["license"] and row["parameters"] == 32 * 9 + 32 + 32 * 16 * 10 + 10


def test_the_shipped_pins_match_the_shipped_files() -> None:
    for variant in get_variants().find():
        package, _, rest = variant.spec.source.removeprefix("package://").partition("/")
        config = SHIPPED / f"zoo-{package.removeprefix('zoo_')}" / package / rest / "config.json"
        assert sha256(config) == variant.spec.sha256, variant.name


def test_names_split_at_the_first_dot_and_model_names_have_none() -> None:
    assert split_variant_name("simple_cnn.digits") == ("", "simple_cnn", "digits")
    assert split_variant_name("acme:simple_cnn.digits") == ("acme", "simple_cnn", "digits")
    assert split_variant_name("simple_cnn") is None
    assert split_variant_name("./cnn.v1") is None
    with pytest.raises(ValueError, match="no dot"):
        zoo_core.ModelSpec("resnet.v2", "m:C")


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (("simple_cnn", "Digits", "package://p/w", "0" * 64), "tag"),
        (("simple_cnn", "a.b", "package://p/w", "0" * 64), "no dot"),
        (("simple_cnn.x", "a", "package://p/w", "0" * 64), "NAME or DIST:NAME"),
        (("simple_cnn", "a", "hf://me/repo@main", "0" * 64), "pin the commit"),
        (("simple_cnn", "a", "package://p/../../etc", "0" * 64), "package://"),
        (("simple_cnn", "a", "/abs/path", "0" * 64), "package://"),
        (("simple_cnn", "a", "package://p/w", "ABC"), "sha256"),
    ],
)
def test_weights_spec_rejects_bad_fields(fields, match) -> None:
    with pytest.raises(ValueError, match=match):
        zoo_core.WeightsSpec(*fields)


def test_a_third_party_publishes_weights_for_another_plugins_model(publisher) -> None:
    path = publisher.variant("acme_weights", "tiny", small_cnn(), labels=list("abcdefghij"))
    publisher.hook("acme_hook", shipped_spec("zoo-cnn:simple_cnn", path))
    plugin = get_registry().plugin("acme_hook")
    assert (plugin.status, plugin.models) == ("ok", ())  # weights-only plugins are plugins
    variant = get_variants().resolve("simple_cnn.tiny")
    assert variant.publisher.name == "acme_hook"
    assert get_variants().resolve("acme_hook:simple_cnn.tiny") is variant
    assert get_variants().resolve("zoo-cnn:simple_cnn.tiny") is variant
    model = zoo_core.load_model("simple_cnn.tiny")
    assert not model.training
    assert model.weights_info["labels"][0] == "a"
    saved = load_file(path / "model.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_conflicting_variants_are_reported_and_qualified_names_choose(publisher) -> None:
    one = publisher.variant("pkg_one", "same", small_cnn(seed=1))
    two = publisher.variant("pkg_two", "same", small_cnn(seed=2))
    publisher.hook("pub_one", shipped_spec("simple_cnn", one))
    publisher.hook("pub_two", shipped_spec("simple_cnn", two))
    with pytest.warns(ZooPluginWarning, match="published by several plugins"):
        variants = get_variants()
    with pytest.raises(AmbiguousModelError, match=r"pub_one:simple_cnn\.same"):
        variants.resolve("simple_cnn.same")
    a = zoo_core.load_model("pub_one:simple_cnn.same")
    b = zoo_core.load_model("pub_two:simple_cnn.same")
    assert not torch.equal(a.conv1.weight, b.conv1.weight)
    # The shipped variant is untouched by the conflict elsewhere.
    assert variants.resolve("simple_cnn.digits").publisher.name == "zoo-cnn"


def test_broken_weights_hooks_are_reported_and_their_models_keep_working(publisher) -> None:
    publisher.hook("raises_hook", "1 / 0")
    publisher.hook("garbage_hook", "['not a spec']")
    with pytest.warns(ZooPluginWarning) as caught:
        variants = get_variants()
    text = " ".join(str(w.message) for w in caught)
    assert "raises_hook: weights hook is broken (ZeroDivisionError" in text
    assert "garbage_hook: weights hook is broken (PluginError" in text
    assert [v.name for v in variants.find()] == SEED_VARIANTS
    assert zoo_core.list_models("simple_cnn") == ["simple_cnn"]
    shown = run_zoo("plugins")
    assert shown.returncode == 0
    assert "raises_hook: weights hook is broken (ZeroDivisionError" in shown.stdout


def test_a_variant_for_a_missing_plugin_is_listed_and_refused_before_reading(publisher) -> None:
    publisher.hook(
        "orphan_hook",
        "[" + spec("zoo-vision:resnet", "imagenet", "hf://acme/resnet@" + "a" * 40, "0" * 64) + "]",
    )
    variant = get_variants().resolve("resnet.imagenet")
    assert describe_variant(variant)["status"] == "not downloaded"
    with pytest.raises(PluginError, match="zoo-vision, which is not installed") as info:
        zoo_core.load_model("resnet.imagenet")
    assert "pip install zoo-vision" in info.value.hint


def test_tampered_shipped_files_are_refused(publisher) -> None:
    path = publisher.variant("tamper_pkg", "t", small_cnn())
    publisher.hook("tamper_hook", shipped_spec("simple_cnn", path))
    zoo_core.load_model("simple_cnn.t")
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"do not match their config\.json") as info:
        zoo_core.load_model("simple_cnn.t")
    assert "model.safetensors" in info.value.message
    config = path / "config.json"
    record = json.loads(config.read_text())
    record["files"]["model.safetensors"] = {"sha256": sha256(weights), "size": len(data)}
    config.write_text(json.dumps(record))  # a consistent directory, but not the pinned one
    with pytest.raises(WeightsError, match="does not match the sha256 its publisher"):
        zoo_core.load_model("simple_cnn.t")
    assert "does not match" in describe_variant(get_variants().resolve("simple_cnn.t"))["status"]


def test_pretrained_true_takes_the_default_and_a_tag_names_one(publisher) -> None:
    path = publisher.variant("extra_pkg", "other", small_cnn(seed=3))
    publisher.hook("extra_hook", shipped_spec("simple_cnn", path))
    default = zoo_core.create_model("simple_cnn", pretrained=True)
    assert default.weights_info["tag"] == "digits"
    other = zoo_core.create_model("simple_cnn", pretrained="other")
    assert other.weights_info["tag"] == "other" and other.config.channels == 4
    with pytest.raises(ModelNotFoundError, match="no weights variant 'nope'") as info:
        zoo_core.create_model("simple_cnn", pretrained="nope")
    assert "digits" in info.value.hint and "other" in info.value.hint
    with pytest.raises(ModelNotFoundError, match="no pretrained weights"):
        zoo_core.create_model("tiny_transformer", pretrained=True)
    with pytest.raises(UsageError):
        zoo_core.create_model("simple_cnn.digits", pretrained="other")


def test_fine_tuning_keeps_every_tensor_that_fits_and_reinitialises_the_head() -> None:
    pretrained = zoo_core.load_model("simple_cnn.digits")
    with pytest.warns(
        UserWarning, match=r"simple_cnn\.digits: re-initialised fc\.bias, fc\.weight"
    ):
        model = zoo_core.create_model("simple_cnn.digits", num_classes=5, seed=7)
    assert model.fc.out_features == 5
    assert model.weights_info["reinitialised"] == ["fc.bias", "fc.weight"]
    assert "labels" not in model.weights_info  # they named the old classes
    assert model.weights_info["preprocessing"] == pretrained.weights_info["preprocessing"]
    for key, tensor in pretrained.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(model.state_dict()[key], tensor), key  # bit-exact
    fresh = zoo_core.create_model(
        "simple_cnn", in_channels=1, image_size=8, channels=32, num_classes=5, seed=7
    )
    assert torch.equal(model.fc.weight, fresh.fc.weight)  # the head comes from the seed


def test_other_shape_changes_on_a_variant_are_errors_naming_the_tensors() -> None:
    with pytest.raises(WeightsError, match=r"conv1\.weight") as info:
        zoo_core.create_model("simple_cnn.digits", channels=8)
    assert "head" in info.value.message or "head" in (info.value.hint or "")
    # Overrides that change no tensor are fine and keep every tensor.
    same = zoo_core.create_model("simple_rnn.digits", seq_len=3)
    assert torch.equal(same.fc.weight, zoo_core.load_model("simple_rnn.digits").fc.weight)


def test_info_shows_a_table_of_variants_and_one_in_full() -> None:
    table = run_zoo("info", "simple_cnn")
    assert table.returncode == 0, table.stderr
    assert "simple_cnn.digits" in table.stdout and "accuracy" in table.stdout
    full = run_zoo("info", "simple_cnn.digits")
    assert full.returncode == 0, full.stderr
    for text in ("sha256", "rows 1347-1796", "labels        0, 1, 2", "CC-BY-4.0", "train_digits"):
        assert text in full.stdout
    data = json.loads(run_zoo("info", "simple_cnn.digits", "--json").stdout)
    assert data["variant"]["weights"]["labels"] == [str(i) for i in range(10)]
    assert data["config"]["in_channels"] == 1
    missing = run_zoo("info", "simple_cnn.nope")
    assert missing.returncode == 1 and "no weights variant" in missing.stderr


def test_copying_a_shipped_variant_keeps_it_loadable_as_a_directory(tmp_path) -> None:
    source = get_variants().resolve("simple_rnn.digits")
    package, _, rest = source.spec.source.removeprefix("package://").partition("/")
    copy = shutil.copytree(SHIPPED / "zoo-rnn" / package / rest, tmp_path / "rnn")
    model = zoo_core.load_model(copy)
    assert model.weights_info["tag"] == "digits"
