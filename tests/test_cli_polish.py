"""The smaller promises of the command line: errors as JSON with --json, one unit for sizes,
byte bars in MiB/s, exit 1 for a missing extra, completion of values, the README's shard
example, and a guide that names every check.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

import zoo_core
from tests.conftest import run_zoo
from tests.test_cli import imported_modules
from tests.test_completion import complete
from zoo_core.units import human_bytes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CNN = ROOT / "plugins/zoo-cnn/zoo_cnn/weights/digits/model.safetensors"


# --- errors with --json ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kind", "code"),
    [
        (["load", "no_such_model", "--json"], "ModelNotFoundError", 1),
        (["load", "simple_cnn", "--dtype", "float7", "--json"], "UsageError", 2),
        (["load", "--json"], "UsageError", 2),
        (["info", "simple_cnn.nope", "--json"], "ModelNotFoundError", 1),
    ],
)
def test_with_json_an_error_is_json_on_stdout(args, kind, code) -> None:
    result = run_zoo(*args)
    assert result.returncode == code, result.stderr
    data = json.loads(result.stdout)
    assert data["type"] == kind and data["exit_code"] == code
    assert data["error"] and "hint" in data
    assert result.stderr == ""
    plain = run_zoo(*[a for a in args if a != "--json"])
    assert plain.returncode == code and plain.stdout == "" and plain.stderr


# --- a missing extra is no command-line mistake ----------------------------------------------


def test_a_missing_pillow_exits_1_and_names_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "PIL").mkdir()
    (fake / "PIL" / "__init__.py").write_text("raise ImportError('no Pillow here')\n")
    (tmp_path / "digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_zoo(
        "predict", "simple_cnn.digits", str(tmp_path / "digit.png"), PYTHONPATH=str(fake)
    )
    assert result.returncode == 1, result.stderr
    assert "needs Pillow" in result.stderr and "zoo-core[images]" in result.stderr


# --- one unit for sizes, each saying what it measures -----------------------------------------


def test_sizes_say_what_they_measure() -> None:
    files = SHIPPED_CNN.stat().st_size
    tensors = 5450 * 4
    assert human_bytes(files) != human_bytes(tensors)  # 22.9 KiB of file, 21.3 KiB of tensors
    listed = run_zoo("list", "--pretrained", "simple_cnn*", HF_HUB_OFFLINE="1")
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[4] == "FILES" and human_bytes(files) in row
    assert "FILES: weight files" in listed.stdout
    loaded = run_zoo("load", "simple_cnn.digits", HF_HUB_OFFLINE="1")
    assert f"tensors        {human_bytes(tensors)} of float32 on cpu" in loaded.stdout
    info = run_zoo("info", "simple_cnn.digits", HF_HUB_OFFLINE="1")
    assert f"tensors       {human_bytes(tensors)} (in memory as stored)" in info.stdout
    assert f"files         {human_bytes(files)} (weight files on disk" in info.stdout
    data = json.loads(run_zoo("list", "--pretrained", "simple_cnn*", "--json").stdout)[0]
    assert (data["bytes"], data["tensor_bytes"]) == (files, tensors)


# --- progress bars count bytes as zoo does --------------------------------------------------


def test_byte_bars_say_mib_and_mib_per_second() -> None:
    from huggingface_hub.utils import tqdm as hub_bar
    from tqdm import tqdm

    from zoo_core.progress import binary_bar

    stream = io.StringIO()
    bar = binary_bar(tqdm)(
        total=50 * 2**20, unit="B", unit_scale=True, file=stream, ncols=120, mininterval=0
    )
    bar.update(12 * 2**20)
    time.sleep(0.05)
    bar.update(12 * 2**20)
    bar.refresh()
    line = stream.getvalue().split("\r")[-1]
    bar.close()
    assert "24.0 MiB/50.0 MiB" in line, line
    assert re.search(r"\d MiB/s\]", line) and "MB" not in line, line
    # Hub downloads get the same formatting on huggingface_hub's own bar class (which keeps
    # its on/off switches: HF_HUB_DISABLE_PROGRESS_BARS, a terminal).
    assert issubclass(binary_bar(hub_bar), hub_bar)
    assert binary_bar(hub_bar).format_dict is not hub_bar.format_dict


def test_zoo_bars_on_a_terminal_say_mib(tmp_path: Path) -> None:
    from tests.terminal import run_zoo_on_terminal

    code, shown = run_zoo_on_terminal(
        "save",
        "linear_regression",
        str(tmp_path / "lr"),
        "--set",
        "input_dim=1024",
        "--set",
        "output_dim=1024",
        TQDM_DELAY="0",
    )
    assert code == 0, shown
    assert "MiB" in shown and "MB/s" not in shown and "MB " not in shown


# --- completion of values ---------------------------------------------------------------------


def test_completion_after_a_variant_and_of_values() -> None:
    keys = complete("load", "simple_cnn.digits", "--set", "num")
    assert keys == ["plain,num_classes="]
    assert complete("save", "simple_rnn.digits", "/tmp/x", "--set", "ce") == ["plain,cell="]
    assert complete("load", "simple_rnn", "--set", "cell=") == [
        "plain,cell=rnn",
        "plain,cell=lstm",
        "plain,cell=gru",
    ]
    assert complete("load", "simple_rnn.digits", "--set", "cell=g") == ["plain,cell=gru"]
    assert complete("info", "tiny_transformer", "--set", "pooling=") == [
        "plain,pooling=mean",
        "plain,pooling=max",
    ]
    assert complete("load", "simple_cnn", "--dtype", "b") == ["plain,bfloat16", "plain,bf16"]
    assert complete("load", "simple_cnn", "--device", "cu") == [
        "plain,cuda",
        "plain,cuda:0",
        "plain,cuda:1",
    ]
    assert complete("predict", "simple_cnn", "x.npy", "--device", "m") == ["plain,mps"]


def test_completing_values_never_imports_torch() -> None:
    result = run_zoo(
        _ZOO_COMPLETE="bash_complete",
        COMP_WORDS="zoo load simple_rnn.digits --set cell=",
        COMP_CWORD="4",
        PYTHONPROFILEIMPORTTIME="1",
    )
    assert result.stdout.splitlines() == ["plain,cell=rnn", "plain,cell=lstm", "plain,cell=gru"]
    modules = imported_modules(result)
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


def test_choices_from_source_understand_optional_bool_and_string_annotations(
    tmp_path, monkeypatch
) -> None:
    from zoo_core.cli.complete import config_choices

    (tmp_path / "choicemodels.py").write_text(
        "from dataclasses import dataclass\n"
        "from typing import Literal, Optional\n"
        "import typing\n"
        "@dataclass\n"
        "class Config:\n"
        "    act: Literal['relu', 'gelu'] = 'relu'\n"
        "    bias: bool = True\n"
        "    norm: Optional[Literal['layer', 'batch']] = None\n"
        '    mode: \'Literal["a", "b"] | None\' = None\n'
        "    kind: typing.Literal[1, 2] = 1\n"
        "    width: int = 4\n"
        "class Model:\n"
        "    Config = Config\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert config_choices("choicemodels:Model") == {
        "act": ["relu", "gelu"],
        "bias": ["true", "false"],
        "norm": ["layer", "batch", "none"],
        "mode": ["a", "b", "none"],
        "kind": ["1", "2"],
    }


# --- the README's shard example shards, the guide names every check -------------------------


def test_the_readme_shard_example_really_shards() -> None:
    readme = (ROOT / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("zoo save") and "--max-shard" in x]
    words = line.split("#")[0].split()
    name = words[2]
    overrides = dict(words[i + 1].split("=") for i, w in enumerate(words) if w == "--set")
    limit_text = words[words.index("--max-shard-size") + 1]
    from zoo_core.storage.writer import shard_limit

    limit = shard_limit(limit_text)
    model = zoo_core.create_model(name, device="meta", **{k: int(v) for k, v in overrides.items()})
    sizes = [t.numel() * t.element_size() for t in model.state_dict().values()]
    assert sum(sizes) > 2 * limit  # at least three shards
    assert max(sizes) <= limit  # and no tensor larger than a shard: it really shards


def test_the_guide_has_a_row_for_every_check() -> None:
    from zoo_core.kit.checks import CHECKS

    guide = (ROOT / "docs" / "plugin-authors.md").read_text()
    assert [c.name for c in CHECKS if f"| `{c.name}`" not in guide] == []


def test_predict_in_python_still_takes_a_list_of_npy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((2, 8, 8)))
    result = zoo_core.predict("simple_cnn", [tmp_path / "a.npy"])
    assert [row["input"] for row in result.rows] == ["a.npy[0]", "a.npy[1]"]
