"""Weights variants hosted on the Hub, pinned to a commit: first use, offline, a moved branch,
tampering, a missing plugin; and the model card ``zoo push`` writes for a variant.

The real huggingface_hub client talks to ``tests/hubserver.py`` on 127.0.0.1. huggingface_hub
reads its environment at import, so every Hub-touching step runs in a fresh process (the real
``zoo`` command or a Python snippet) with its own cache under ``tmp_path``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import zoo_core
from tests.conftest import run_zoo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import client_env, start_server_subprocess, stop_server_subprocess

# Each test runs the zoo command two or three times against a server process.
pytestmark = pytest.mark.slow

TOKEN = "hf_zootest_variants_3c9a1e"
REPO = "zoo/cnn-variant"


@dataclass
class HubVariant:
    url: str
    site: Path  # holds the publisher's hook module
    commit: str
    pinned_digest: str  # sha256 of model.safetensors at the pinned commit
    home: Path  # the cache the push used

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        path = os.environ.get("PYTHONPATH", "")
        return {
            **client_env(self.url, home, TOKEN),
            "PYTHONPATH": os.pathsep.join(p for p in (str(self.site), path) if p),
            "ZOO_PLUGINS": "hub_publisher",
            **extra,
        }


def push(env: dict[str, str], directory: Path, repo: str) -> str:
    """Push with the real ``zoo push``; returns the new commit."""
    result = run_zoo("push", str(directory), repo, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(f"hf://{repo}@")[1].split()[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def blob(home: Path, name: str) -> Path:
    (found,) = (home / "hub").glob(f"models--zoo--cnn-variant/snapshots/*/{name}")
    return found


@pytest.fixture(scope="module")
def hub_variant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubVariant]:
    """A saved variant pushed to the test Hub, and a hook module pinning its commit."""
    tmp = tmp_path_factory.mktemp("hub-variant")
    url, process = start_server_subprocess(tmp / "hub-root", token=TOKEN, user="zoo")
    try:
        model = zoo_core.create_model("simple_cnn", in_channels=1, image_size=8, channels=4, seed=5)
        weights = {
            "tag": "hubby",
            "task": "image-classification",
            "dataset": {"name": "scikit-learn digits"},
            "metrics": [{"name": "accuracy", "value": 0.5, "split": "test"}],
            "labels": [f"class {i}" for i in range(10)],
            "license": "MIT",
        }
        saved = zoo_core.save_model(model, tmp / "variant", weights=weights)
        site = tmp / "site"
        site.mkdir()
        variant = HubVariant(url, site, "", sha256(saved / "model.safetensors"), tmp / "home")
        variant.commit = push(variant.env(variant.home), saved, REPO)
        source = f"hf://{REPO}@{variant.commit}"
        specs = [
            ("simple_cnn", "hubby", source, sha256(saved / "config.json")),
            ("zoo-vision:resnet", "imagenet", f"hf://zoo/resnet@{'b' * 40}", "0" * 64),
        ]
        (site / "hub_publisher.py").write_text(
            textwrap.dedent(
                f"""
                from zoo_core import WeightsSpec, hookimpl

                @hookimpl
                def zoo_register_weights():
                    return [WeightsSpec(*fields) for fields in {specs!r}]
                """
            )
        )
        yield variant
    finally:
        stop_server_subprocess(process)


def test_first_use_then_offline_from_the_cache(hub_variant: HubVariant, tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = run_zoo("load", "simple_cnn.hubby", "--json", **hub_variant.env(home))
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert (data["source_kind"], data["commit"]) == ("variant", hub_variant.commit)
    assert sha256(blob(home, "model.safetensors")) == hub_variant.pinned_digest
    offline_env = hub_variant.env(home, HF_HUB_OFFLINE="1")
    offline = run_zoo("load", "simple_cnn.hubby", "--json", **offline_env)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["commit"] == hub_variant.commit
    listed = run_zoo("list", "--pretrained", "--json", **offline_env)
    row = {r["name"]: r for r in json.loads(listed.stdout)}["simple_cnn.hubby"]
    assert row["status"] == "ok" and row["license"] == "MIT" and row["metric"]["value"] == 0.5


def test_offline_and_not_cached_says_how_to_fetch(hub_variant: HubVariant, tmp_path: Path) -> None:
    env = hub_variant.env(tmp_path / "home", HF_HUB_OFFLINE="1")
    result = run_zoo("load", "simple_cnn.hubby", **env)
    assert result.returncode == 1
    assert "HF_HUB_OFFLINE=1" in result.stderr and "zoo pull zoo/cnn-variant" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_moved_branch_does_not_move_the_pin(hub_variant: HubVariant, tmp_path: Path) -> None:
    home = tmp_path / "home"
    other = zoo_core.save_model(
        zoo_core.create_model("simple_cnn", in_channels=1, image_size=8, channels=4, seed=9),
        tmp_path / "other",
        weights={"tag": "hubby"},
    )
    moved = push(hub_variant.env(home), other, REPO)  # main now points elsewhere
    assert moved != hub_variant.commit
    result = run_zoo("load", "simple_cnn.hubby", "--json", **hub_variant.env(home))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["commit"] == hub_variant.commit
    assert sha256(blob(home, "model.safetensors")) == hub_variant.pinned_digest


def test_a_tampered_cached_file_is_refused_and_evicted(
    hub_variant: HubVariant, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = hub_variant.env(home)
    assert run_zoo("load", "simple_cnn.hubby", **env).returncode == 0
    weights = blob(home, "model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.resolve().write_bytes(bytes(data))
    refused = run_zoo("load", "simple_cnn.hubby", **env)
    assert refused.returncode == 1
    assert "refusing to use weights that do not match" in refused.stderr
    assert not weights.exists()  # evicted: the next use downloads it again
    again = run_zoo("load", "simple_cnn.hubby", "--json", **env)
    assert again.returncode == 0, again.stderr
    assert sha256(blob(home, "model.safetensors")) == hub_variant.pinned_digest


def test_a_missing_plugin_is_said_before_any_download(
    hub_variant: HubVariant, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    result = run_zoo("load", "resnet.imagenet", **hub_variant.env(home))
    assert result.returncode == 1
    assert "zoo-vision, which is not installed" in result.stderr
    assert "pip install zoo-vision" in result.stderr
    assert not list(home.glob("hub/models--*"))  # nothing was fetched, not even config.json


def test_the_pushed_card_carries_metrics_labels_and_license(hub_variant: HubVariant) -> None:
    env = hub_variant.env(hub_variant.home)
    result = run_zoo("pull", f"{REPO}@{hub_variant.commit}", **env)
    assert result.returncode == 0, result.stderr
    card = blob(hub_variant.home, "README.md").read_text()
    header = card.split("---")[1]
    assert "license: mit" in header
    assert "- class 0" in header
    assert "model-index:" in header and "type: accuracy" in header and "value: 0.5" in header
    assert "split: test" in header and "type: image-classification" in header
