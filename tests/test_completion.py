"""Shell completion of model names, plugin names and --set keys: in a real bash, and by protocol."""

from __future__ import annotations

import dataclasses
import importlib
import textwrap

import pytest

from tests.conftest import run_zoo
from tests.terminal import Shell
from tests.test_cli import imported_modules
from zoo_core.cli.complete import config_keys, config_keys_from_source

BUNDLED_TARGETS = [
    "zoo_linear.model:LinearRegression",
    "zoo_cnn.model:SimpleCNN",
    "zoo_rnn.model:SimpleRNN",
    "zoo_transformer.model:TinyTransformer",
]


def complete(*words: str, **env: str) -> list[str]:
    """What click offers for the last word of ``zoo WORDS...`` (bash's protocol: 'type,value')."""
    line = ["zoo", *words]
    result = run_zoo(
        _ZOO_COMPLETE="bash_complete",
        COMP_WORDS=" ".join(line),
        COMP_CWORD=str(len(line) - 1),
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completes_a_model_name_and_a_set_key(tmp_path) -> None:
    shell = Shell(tmp_path)
    try:
        shell.send('eval "$(_ZOO_COMPLETE=bash_source zoo)" && echo "completion-"on\n')
        shell.wait_for("completion-on")
        shell.send("zoo load tiny_t\t")
        shell.wait_for("tiny_transformer ")
        shell.send("--set d_mo\t")
        shell.wait_for("d_model=")
        shell.send("\x15zoo save simple_rnn ./x --set ce\t")  # Ctrl-U: start a new line
        shell.wait_for("cell=")
        # Pretrained weights variants complete as NAME.TAG.
        shell.send("\x15zoo load simple_cnn.d\t")
        shell.wait_for("simple_cnn.digits ")
        # Several matches: all are listed at once (show-all-if-ambiguous).
        shell.send("\x15zoo info simple_\t")
        listing = shell.wait_for("simple_rnn.digits")
        assert "simple_cnn" in listing and "simple_rnn" in listing
    finally:
        shell.close()


def test_model_names_and_paths_for_sources() -> None:
    assert complete("load", "simple_") == [
        "plain,simple_cnn",
        "plain,simple_cnn.digits",
        "plain,simple_rnn",
        "plain,simple_rnn.digits",
    ]
    assert complete("load", "zoo-cnn:") == [
        "plain,zoo-cnn:simple_cnn",
        "plain,zoo-cnn:simple_cnn.digits",
    ]
    assert "plain,tiny_transformer" in complete("check", "")
    assert complete("convert", "x.pt", "--arch", "lin") == ["plain,linear_regression"]
    # Something that looks like a path is left to the shell's file completion.
    assert complete("load", "./cn") == ["file,./cn"]
    assert complete("verify", "") == ["file,"]  # a directory, a .safetensors file or hf://


def test_plugin_names_for_check() -> None:
    assert complete("check", "--plugin", "zoo-") == [
        "plain,zoo-cnn",
        "plain,zoo-linear",
        "plain,zoo-rnn",
        "plain,zoo-transformer",
    ]


def test_set_keys_follow_the_model_named_before(tmp_path) -> None:
    assert complete("load", "simple_rnn", "--set", "") == [
        f"plain,{k}="
        for k in ("input_size", "hidden_size", "output_size", "cell", "num_layers", "seq_len")
    ]
    assert complete("info", "zoo-cnn:simple_cnn", "--set", "num") == ["plain,num_classes="]
    assert complete("convert", "x.pt", "--arch", "linear_regression", "--set", "in") == [
        "plain,input_dim="
    ]
    # A saved model takes no --set; an unknown model or a typed value offers nothing.
    (tmp_path / "saved").mkdir()
    assert complete("load", str(tmp_path / "saved"), "--set", "") == []
    assert complete("load", "no_such_model", "--set", "") == []
    assert complete("load", "simple_cnn", "--set", "num_classes=") == []


def test_completing_set_keys_never_imports_torch() -> None:
    line = "zoo load tiny_transformer --set d_"
    result = run_zoo(
        _ZOO_COMPLETE="bash_complete",
        COMP_WORDS=line,
        COMP_CWORD="4",
        PYTHONPROFILEIMPORTTIME="1",
    )
    assert result.stdout.splitlines() == ["plain,d_model="]
    modules = imported_modules(result)
    assert "click" in modules
    assert not {m for m in modules if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize("target", BUNDLED_TARGETS)
def test_keys_read_from_source_equal_the_dataclass_fields(target) -> None:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert config_keys_from_source(target) == [f.name for f in dataclasses.fields(cls.Config)]


def test_keys_from_source_understand_bases_and_skip_what_is_not_a_field(
    tmp_path, monkeypatch
) -> None:
    (tmp_path / "srcmodels.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass, field
            from typing import ClassVar
            from elsewhere import ImportedConfig

            @dataclass
            class Base:
                width: int = 4

            @dataclass
            class Config(Base):
                depth: int = 2
                kind: ClassVar[str] = "x"
                cache: list = field(default_factory=list, init=False)

            class Model:
                Config = Config

            class Foreign:
                Config = ImportedConfig
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert config_keys_from_source("srcmodels:Model") == ["width", "depth"]
    # A config class defined elsewhere cannot be read from this source: None, so the
    # caller falls back to importing.
    assert config_keys_from_source("srcmodels:Foreign") is None
    assert config_keys_from_source("srcmodels:Missing") is None
    assert config_keys_from_source("no_such_module_here:Model") is None


def test_keys_fall_back_to_importing_the_class(tmp_path, monkeypatch) -> None:
    (tmp_path / "dynconfig.py").write_text(
        textwrap.dedent(
            """
            import dataclasses
            Made = dataclasses.make_dataclass("Made", [("alpha", int, 1), ("beta", float, 2.0)])

            class Model:
                Config = Made
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert config_keys_from_source("dynconfig:Model") is None
    assert config_keys("dynconfig:Model") == ["alpha", "beta"]
