"""The ``README.md`` model card that ``zoo push`` writes for a saved model.

The card carries huggingface_hub's YAML metadata (``library_name: zoo``, the
tags of :func:`~zoo_core.hub.card_data.card_tags`, license), says what the
model is and which plugin provides it, and shows how to install and load it.
Everything in it comes from the saved ``config.json`` and the safetensors
headers; nothing is imported from the model's plugin except its one-line
summary, when the plugin is installed.

>>> print(render_card(read_saved(Path("cnn")), "me/cnn-demo"))        # doctest: +SKIP
---
library_name: zoo
...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zoo_core.hub.card_data import CARD_NAME, LIBRARY_NAME, card_tags
from zoo_core.pretrained.metadata import card_metadata, check_weights_section, plain_text
from zoo_core.storage.record import INDEX_NAME, WEIGHTS_NAME
from zoo_core.storage.weights import SavedModel
from zoo_core.units import human_bytes
from zoo_core.untrusted import install_requirement

__all__ = ["CARD_NAME", "render_card"]

_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2}
_DTYPE_BYTES |= {"I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _parameter_count(saved: SavedModel) -> tuple[int, int]:
    """Parameters and bytes stored in the weight files, read from the safetensors headers."""
    from safetensors import safe_open

    count = size = 0
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with safe_open(file, framework="pt") as f:
            for key in keys:
                piece = f.get_slice(key)
                numel = 1
                for dim in piece.get_shape():
                    numel *= dim
                count += numel
                size += numel * _DTYPE_BYTES.get(piece.get_dtype(), 4)
    return count, size


def _summary(arch: str, plugin: str | None) -> str | None:
    from zoo_core.errors import ZooError
    from zoo_core.plugins.registry import get_registry

    try:
        entry = get_registry().resolve(f"{plugin}:{arch}" if plugin else arch)
    except ZooError:
        return None
    return entry.spec.summary or None


def render_card(saved: SavedModel, repo_id: str, *, license: str | None = None) -> str:
    """The README.md model card ``push`` writes: YAML metadata, what it is, how to load it."""
    from huggingface_hub import ModelCardData

    record = saved.record
    arch = record["architecture"]
    plugin = record.get("plugin") or "the plugin that provides it"
    version = record.get("plugin_version")
    params, size = _parameter_count(saved)
    summary = _summary(arch, record.get("plugin"))
    # The Hub indexes these: 'zoo search' filters on them and reads them back.
    tags = card_tags(arch, record.get("plugin"))
    # A weights section's metrics, labels and license go into the card's metadata: a saved
    # variant keeps them all, fine-tuned weights only those that still apply (see carry).
    extra: dict[str, object] = {}
    section: dict[str, object] = {}
    if "weights" in record:
        section = check_weights_section(record["weights"], str(saved.path))
        extra = card_metadata(section, repo_id.split("/")[-1])
    license = license or extra.pop("license", None)
    extra.pop("license", None)
    data = ModelCardData(library_name=LIBRARY_NAME, license=license, tags=tags, **extra)
    config_json = json.dumps(record.get("config", {}), indent=2, sort_keys=True)
    # Only a valid distribution name goes into a command a reader will paste.
    requirement = install_requirement(record.get("plugin"))
    install = "pip install zoo-core" + (f" {requirement}" if requirement else "")
    weights = (
        WEIGHTS_NAME
        if WEIGHTS_NAME in {p.name for p in saved.files}
        else f"{len(saved.files)} shards named by {INDEX_NAME}"
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A `{arch}` model for [zoo](https://pypi.org/project/zoo-core/), the plugin-based "
        f"PyTorch model zoo. The architecture comes from the plugin `{plugin}`"
        + (f" (saved with version {version})" if version else "")
        + "; this repository holds only its config and weights.",
        "",
    ]
    if summary:
        lines += [f"> {summary}", ""]
    lines += _weights_lines(section, repo_id)
    lines += [
        f"- Parameters: {params:,} ({human_bytes(size)})",
        f"- Weights: safetensors ({weights}); no pickle, no code",
        f"- Saved with zoo-core {record.get('zoo_core_version', 'unknown')}",
        "",
        "## Config",
        "",
        "```json",
        config_json,
        "```",
        "",
        "## How to load",
        "",
        "```bash",
        install,
        f"zoo load hf://{repo_id}",
        "```",
        "",
        "```python",
        "import zoo_core",
        "",
        f'model = zoo_core.load_model("hf://{repo_id}", device="cpu")',
        "```",
        "",
        "Pin a version with `hf://" + repo_id + "@<revision>` (a branch, tag or commit).",
        "",
    ]
    return "\n".join(lines)


def _weights_lines(section: dict[str, Any], repo_id: str) -> list[str]:
    """What the card's text says of a weights section: origin, data, metrics, labels, inputs."""
    if not section:
        return []
    lines = ["## Weights", ""]
    if section.get("summary"):
        lines += [plain_text(section["summary"], 300), ""]
    base = section.get("base")
    if base:
        lines.append(
            f"- Derived from `{plain_text(base['name'], 200)}` "
            f"(its config.json sha256 `{base['sha256']}`)"
        )
    dataset = section.get("dataset") or {}
    if dataset.get("name"):
        lines.append(f"- Data: {plain_text(dataset['name'], 200)}")
    for metric in section.get("metrics") or []:
        split = f" ({plain_text(metric['split'], 60)})" if metric.get("split") else ""
        lines.append(f"- {plain_text(metric['name'], 60)}: {metric['value']:.6g}{split}")
    labels = section.get("labels")
    if labels:
        lines.append(f"- {len(labels)} labels (in the metadata above)")
    if section.get("preprocessing"):
        lines.append(
            "- Inputs are raw values as the data set stores them: zoo applies the recorded "
            f"preprocessing (`zoo predict hf://{repo_id} inputs.npy`)"
        )
    return [*lines, ""]
