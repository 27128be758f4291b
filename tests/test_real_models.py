"""Real models as they are (issue 17): model files written the way research repositories write
them (tests/fixtures/gpt_like.py, vit_like.py, rnn_lm.py), registered unedited by
tests/fixtures/real_models_plugin.py; defects zoo must flag honestly in real_models_bad.py.

The sharded scenarios (FSDP on nested ModuleLists, tied weights on 2 ranks) run in the one
torchrun launch of tests/test_distributed.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import zoo_core
from tests.conftest import run_zoo
from zoo_core.cli import cli
from zoo_core.distributed.fake import fake_mesh, shard_on_fake_mesh
from zoo_core.distributed.plans import fsdp_units
from zoo_core.errors import ConfigError, PluginCodeError, PluginError, UsageError
from zoo_core.models.build import Architecture
from zoo_core.models.tying import tied_groups
from zoo_core.storage.safetensors_io import read_header
from zoo_core.testing import run_checks

REAL = ["gpt_like", "gpt_factory", "gpt_plain_config", "vit_like", "rnn_lm", "rnn_lm_untied"]


@pytest.fixture
def real(fixture_plugins):
    fixture_plugins("real_models_plugin", "real_models_bad")


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- 1. tied weights are one tensor: in the file, after loading, in every count ---------------


@pytest.mark.parametrize(
    ("name", "kept", "alias"),
    [
        ("gpt_like", "transformer.wte.weight", "lm_head.weight"),
        ("rnn_lm", "encoder.weight", "decoder.weight"),
    ],
)
def test_a_tied_tensor_is_stored_once_and_loads_as_one_parameter(
    real, tmp_path, capsys, name, kept, alias
) -> None:
    model = zoo_core.create_model(name, seed=0)
    assert model.get_parameter(alias) is model.get_parameter(kept)
    path = zoo_core.save_model(model, tmp_path / name)
    header = read_header(path / "model.safetensors")
    assert kept in header.tensors and alias not in header.tensors
    assert len(header.tensors) == len(model.state_dict()) - 1
    # huggingface_hub's convention for a dropped shared tensor: {"dropped": "kept"}
    assert header.metadata[alias] == kept
    assert json.loads((path / "config.json").read_text())["tied_weights"] == {alias: kept}
    from zoo_core.sources.verify import verify_directory

    assert [p for p in verify_directory(path) if p.level == "error"] == []
    loaded = zoo_core.load_model(path)
    assert loaded.get_parameter(alias) is loaded.get_parameter(kept)
    assert tied_groups(loaded) == [(kept, alias)]
    assert n_params(loaded) == n_params(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_a_loaded_tied_model_trains_like_a_fresh_one(real, tmp_path) -> None:
    fresh = zoo_core.create_model("gpt_like", seed=0).train()
    loaded = zoo_core.load_model(zoo_core.save_model(fresh, tmp_path / "g")).train()
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 64, (2, 16), generator=generator) for _ in range(3)]
    for model in (fresh, loaded):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for ids in batches:
            optimizer.zero_grad()
            _, loss = model(ids, ids)
            loss.backward()
            optimizer.step()
    assert n_params(loaded) == n_params(fresh)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_weights_that_drop_the_tied_name_load_tied(real, tmp_path) -> None:
    """transformers' layout: the tied output layer is left out of the file, with no note."""
    model = zoo_core.create_model("gpt_like", seed=0)
    for dropped in ("lm_head.weight", "transformer.wte.weight"):
        state = {k: v.clone() for k, v in model.state_dict().items() if k != dropped}
        file = tmp_path / f"without-{dropped}.safetensors"
        save_file(state, file)
        loaded = zoo_core.load_model(file, arch="gpt_like")
        assert loaded.lm_head.weight is loaded.transformer.wte.weight
        assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_zoo_info_and_load_count_a_tied_tensor_once(real) -> None:
    model = zoo_core.create_model("gpt_like", seed=0)
    unique = n_params(model)
    assert unique == sum(v.numel() for v in model.state_dict().values()) - 64 * 16
    runner = CliRunner()
    info = json.loads(runner.invoke(cli, ["info", "gpt_like", "--json"]).stdout)
    assert (info["parameters"], info["bytes"]) == (unique, unique * 4)
    # The model prints its parameter count in __init__: --json must stay JSON.
    loaded = runner.invoke(cli, ["load", "gpt_like", "--json"])
    assert loaded.exit_code == 0, loaded.output
    data = json.loads(loaded.stdout)
    assert (data["parameters"], data["bytes"]) == (unique, unique * 4)
    assert "number of parameters" in loaded.stderr


def test_a_fine_tuned_variant_keeps_its_ties(real, tmp_path, monkeypatch) -> None:
    package = tmp_path / "site" / "lm_weights"
    package.mkdir(parents=True)
    (package / "__init__.py").touch()
    model = zoo_core.create_model("rnn_lm", seed=0)
    saved = zoo_core.save_model(model, package / "weights" / "wiki", weights={"tag": "wiki"})
    digest = hashlib.sha256((saved / "config.json").read_bytes()).hexdigest()
    (tmp_path / "site" / "lm_hook.py").write_text(
        "from zoo_core import WeightsSpec, hookimpl\n"
        "@hookimpl\n"
        "def zoo_register_weights():\n"
        f"    return [WeightsSpec('rnn_lm', 'wiki', 'package://lm_weights/weights/wiki', "
        f"'{digest}')]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("ZOO_PLUGINS", os.environ["ZOO_PLUGINS"] + ",lm_hook")
    from zoo_core.plugins.registry import reset_registry

    reset_registry()
    plain = zoo_core.load_model("rnn_lm.wiki")
    tuned = zoo_core.create_model("rnn_lm.wiki", dropout=0.0)  # overrides: the fine-tune path
    for loaded in (plain, tuned):
        assert loaded.decoder.weight is loaded.encoder.weight
        assert n_params(loaded) == n_params(model)
        assert torch.equal(loaded.encoder.weight, model.encoder.weight)


def test_the_kit_fails_a_tie_that_does_not_survive_loading(real) -> None:
    results = {r.check: r for r in run_checks("tied_only_when_real").results}
    assert results["tied-weights"].status == "fail"
    assert "embed.weight = head.weight, but on meta nothing" in results["tied-weights"].message
    assert {r.check for r in results.values() if r.status == "fail"} == {"tied-weights"}
    ok = run_checks("gpt_like", only=["tied-weights"]).results[0]
    assert ok.status == "pass" and "transformer.wte.weight = lm_head.weight" in ok.message


def test_compiled_and_data_parallel_models_save_as_the_model_inside(real, tmp_path) -> None:
    model = zoo_core.create_model("rnn_lm", seed=0)
    reference = zoo_core.save_model(model, tmp_path / "plain")
    wrapped = {
        "compiled": torch.compile(model),
        "data_parallel": torch.nn.DataParallel(model),
        "compiled_data_parallel": torch.compile(torch.nn.DataParallel(model)),
    }
    with fake_mesh(2):  # DistributedDataParallel wants a process group; the fake one will do
        wrapped["ddp"] = torch.nn.parallel.DistributedDataParallel(model)
        for label, wrapper in wrapped.items():
            path = zoo_core.save_model(wrapper, tmp_path / label)
            assert digests(path) == digests(reference), label


def test_convert_strips_wrapper_prefixes_and_says_so(real, tmp_path) -> None:
    model = zoo_core.create_model("rnn_lm", seed=0)
    runner = CliRunner()
    for prefix, wrapper in (("_orig_mod.", "torch.compile"), ("_orig_mod.module.", "then")):
        checkpoint = tmp_path / f"{len(prefix)}.pt"
        torch.save({prefix + k: v for k, v in model.state_dict().items()}, checkpoint)
        out = tmp_path / f"converted-{len(prefix)}"
        result = runner.invoke(
            cli, ["convert", str(checkpoint), "--arch", "rnn_lm", "-o", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "'_orig_mod.'" in result.stderr and wrapper in result.stderr
        loaded = zoo_core.load_model(out)
        assert loaded.decoder.weight is loaded.encoder.weight
        assert torch.equal(loaded.encoder.weight, model.encoder.weight)


def test_convert_names_an_unknown_prefix(real, tmp_path) -> None:
    from zoo_core.sources.convert import convert_checkpoint

    model = zoo_core.create_model("vit_like", seed=0)
    checkpoint = tmp_path / "lightning.pt"
    torch.save({"net." + k: v for k, v in model.state_dict().items()}, checkpoint)
    with pytest.raises(zoo_core.WeightsError) as info:
        convert_checkpoint(checkpoint, "vit_like", tmp_path / "out")
    assert "every unexpected key begins with 'net.'" in info.value.hint


# --- 2. the same model gives the same bytes ----------------------------------------------------


@pytest.mark.parametrize("shard", [None, 8_000])
def test_three_saves_of_one_model_are_byte_identical(real, tmp_path, shard) -> None:
    saves = []
    for i in range(3):
        model = zoo_core.create_model("gpt_like", seed=0)
        saves.append(digests(zoo_core.save_model(model, tmp_path / str(i), max_shard_size=shard)))
    assert saves[0] == saves[1] == saves[2]
    if shard:
        assert "model.safetensors.index.json" in saves[0]


def test_zoo_save_three_times_gives_one_sha256(real, tmp_path) -> None:
    runner = CliRunner()
    for i in range(3):
        result = runner.invoke(cli, ["save", "gpt_like", str(tmp_path / str(i)), "--seed", "0"])
        assert result.exit_code == 0, result.output
        assert "number of parameters" not in result.stdout  # the model's print: stderr
    assert digests(tmp_path / "0") == digests(tmp_path / "1") == digests(tmp_path / "2")


# --- 3. a constructor that takes a config object --------------------------------------------


def test_the_new_spec_fields_survive_the_plugin_cache(real) -> None:
    from zoo_core.plugins.registry import get_registry, reset_registry

    fresh = {e.name: e.spec for e in get_registry().models()}
    reset_registry()  # the second registry reads the cache the first one wrote
    cached = {e.name: e.spec for e in get_registry().models()}
    assert cached["gpt_like"] == fresh["gpt_like"] and cached["rnn_lm"] == fresh["rnn_lm"]
    assert cached["rnn_lm"].input_shape == {"input": ("seq", "batch")}
    assert cached["declares_failures"].expected_failures == {
        "size-variants": "the head has 3 outputs, whatever it says"
    }
    assert cached["gpt_like"].config == "gpt_like:GPTConfig" and cached["gpt_like"].tp_plan


def test_a_config_object_registers_and_takes_set(real) -> None:
    import gpt_like

    arch = Architecture.named("gpt_like")
    assert arch.config_object is gpt_like.GPTConfig
    assert [f.name for f in dataclasses.fields(arch.Config)] == [
        f.name for f in dataclasses.fields(gpt_like.GPTConfig)
    ]
    assert arch.config().n_layer == 2  # defaults= replaces the config class's default
    model = zoo_core.create_model("gpt_like", n_layer=3, seed=0)
    assert isinstance(model.config, gpt_like.GPTConfig) and model.config.n_layer == 3
    assert len(model.transformer.h) == 3
    result = CliRunner().invoke(cli, ["load", "gpt_like", "--set", "n_layer=4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output_shape"] == [1, 16, 64]
    with pytest.raises(ConfigError, match="did you mean 'n_head'"):
        zoo_core.create_model("gpt_like", n_haed=3)


def test_a_factory_and_a_plain_config_class_register_too(real, tmp_path) -> None:
    factory = zoo_core.create_model("gpt_factory", seed=0)
    assert factory.config.n_embd == 8
    plain = zoo_core.create_model("gpt_plain_config", vocab_size=40, seed=0)
    assert plain.lm_head.out_features == 40
    loaded = zoo_core.load_model(zoo_core.save_model(plain, tmp_path / "p"))
    assert loaded.config.vocab_size == 40 and loaded.lm_head.weight is loaded.transformer.wte.weight


def test_set_completes_the_fields_of_a_config_class_without_importing_it(real) -> None:
    from zoo_core.cli.complete import config_keys

    assert config_keys("gpt_like:GPT", "gpt_like:GPTConfig") == [
        "block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "target"), [("gpt_without_config", "GPT"), ("factory_without_config", "build_gpt")]
)
def test_a_missing_config_class_says_how_to_declare_it(real, name, target) -> None:
    with pytest.raises(PluginError) as info:
        Architecture.named(name)
    assert f"parameter 'config' of {target}" in info.value.message
    assert "config='gpt_like:GPTConfig'" in info.value.hint
    assert "factory function" in info.value.hint


# --- 4. checks that know validation from a bug -------------------------------------------


def test_a_refused_size_is_validation_not_a_failure(real) -> None:
    vit = run_checks("vit_like", only=["size-variants"]).results[0]
    assert vit.status == "pass", vit.message
    # patch_size 8 -> 16 does not divide image_size 24: the assert refuses it, 4 is tried.
    lm = run_checks("rnn_lm", only=["size-variants"]).results[0]
    assert lm.status == "pass", lm.message
    assert "refuses every tried value of ninp (32, 8, 17, 15)" in lm.message


def test_a_hard_coded_output_size_is_a_failure(real) -> None:
    result = run_checks("hard_coded_head", only=["size-variants"]).results[0]
    assert result.status == "fail"
    assert "with num_classes=6 (default 3), the output is still (2, 3)" in result.message
    assert "nn.Linear(8, ...)" not in result.hint


@pytest.mark.slow
def test_declared_expected_failures_count_in_zoo_check_and_pytest(real, tmp_path) -> None:
    report = run_checks("declares_failures")
    assert report.passed
    statuses = {r.check: r for r in report.results}
    assert statuses["size-variants"].status == "xfail"
    assert "the head has 3 outputs" in statuses["size-variants"].message
    typo = {r.check: r for r in run_checks("declares_a_typo").results}["expected-failures"]
    assert typo.status == "fail" and "size-variant" in typo.message
    checked = CliRunner().invoke(cli, ["check", "declares_failures", "--json"])
    assert checked.exit_code == 0, checked.output
    (tmp_path / "test_declared.py").write_text(
        textwrap.dedent(
            """
            from zoo_core.testing import parametrize_with_checks

            @parametrize_with_checks(["declares_failures"])
            def test_zoo(model, check):
                if check.name in ("size-variants", "target-class"):
                    check(model)
            """
        )
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rx", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout
    assert "1 xfailed" in result.stdout and "the head has 3 outputs" in result.stdout


def test_messages_are_cut_between_words(real) -> None:
    from zoo_core.errors import error_text

    long = ValueError("word " * 100)
    text = error_text(long, chars=50)
    assert text.endswith("…") and all(w in ("word", "…", "ValueError:") for w in text.split())


# --- 5. inputs for classes one cannot edit ----------------------------------------------------


def test_a_declared_input_shape_is_checked_before_forward(real) -> None:
    lm = zoo_core.create_model("rnn_lm", seed=0)
    with pytest.raises(zoo_core.InputShapeError, match=r"expects 'input' of shape \(seq, batch\)"):
        lm(torch.zeros(7, 2, 1, dtype=torch.long), None)
    with pytest.raises(zoo_core.InputShapeError, match=r"expects 'input'"):
        lm(input=torch.zeros(7, dtype=torch.long), hidden=None)
    out, _ = lm(torch.zeros(3, 2, dtype=torch.long), None)  # any length, any batch
    assert out.shape == (6, 50)


def test_the_shape_hint_for_a_class_one_cannot_edit_points_to_the_spec(fixture_plugins) -> None:
    fixture_plugins("multi_input_plugin")
    result = run_checks("plain_pair", only=["wrong-shape-error"]).results[0]
    assert result.status == "fail"
    assert "input_shape=" in result.hint and "check_input" not in result.hint
    native = run_checks("pair_regressor", only=["wrong-shape-error"]).results[0]
    assert native.status == "pass"


def test_input_functions_get_dtype_and_device_and_may_give_none(real) -> None:
    arch = Architecture.named("rnn_lm")
    model = arch.build(arch.config(), seed=0).to(torch.float64)
    tokens, (h, c) = arch.example_input(model, 2)
    assert tokens.dtype == torch.long and h.dtype == c.dtype == torch.float64
    for name in ("rnn_lm", "rnn_lm_untied"):
        result = run_checks(name, only=["dtype-casts"]).results[0]
        assert result.status == "pass", result.message
    untied = Architecture.named("rnn_lm_untied")
    assert untied.example_input(untied.build(untied.config()), 2)[1] is None


# --- 6. FSDP on any module tree -------------------------------------------------------------


def test_fsdp_units_look_into_containers(real) -> None:
    vit = Architecture.named("vit_like").build_meta(Architecture.named("vit_like").config())
    units = fsdp_units(vit)
    assert sorted(units) == [
        "transformer.layers.0.0",
        "transformer.layers.0.1",
        "transformer.layers.1.0",
        "transformer.layers.1.1",
    ]
    assert fsdp_units(vit, ["transformer.layers.*.1"]) == [
        "transformer.layers.1.1",
        "transformer.layers.0.1",
    ]
    with pytest.raises(PluginError, match=r"transformer.layers.0, a ModuleList, which has no"):
        fsdp_units(vit, ["transformer.layers.*"])


def test_sharding_on_a_fake_mesh_in_one_process(real) -> None:
    vit = Architecture.named("vit_like")
    done = shard_on_fake_mesh(vit, vit.config(), "fsdp")
    assert len(done.units) == 4 and done.output_shapes == [(2, 10)]
    gpt = Architecture.named("gpt_like")
    tp = shard_on_fake_mesh(gpt, gpt.config(), "tp")
    assert tp.units == ["transformer.h.*.mlp.up", "transformer.h.*.mlp.down"]
    assert tp.output_shapes == [(2, 16, 64)]
    with fake_mesh(2), pytest.raises(UsageError, match="already exists"):
        shard_on_fake_mesh(vit, vit.config())
    with pytest.raises(UsageError, match="declares no tensor-parallel plan"):
        shard_on_fake_mesh(vit, vit.config(), "tp")


def test_a_torch_refusal_while_sharding_is_a_zoo_error_naming_the_module(real) -> None:
    arch = Architecture.named("scaled_by_scalar")
    with pytest.raises(PluginError) as info:
        shard_on_fake_mesh(arch, arch.config(), "fsdp")
    assert "FSDP cannot shard its root module (ScaledByScalar)" in info.value.message
    assert "scalar parameters" in info.value.message and "fsdp_units" in info.value.hint
    results = {r.check: r for r in run_checks("scaled_by_scalar", only=["fsdp"]).results}
    assert results["fsdp"].status == "fail" and "ScaledByScalar" in results["fsdp"].message


def test_a_tp_plan_on_a_factory_built_class_is_reported(real) -> None:
    plan = run_checks("gpt_planned", only=["tp-plan"]).results[0]
    assert (plan.status, plan.message) == ("pass", "2 patterns fit a mesh of 2")
    spec = {r.check: r for r in run_checks("gpt_like", only=["tp-plan", "tp"]).results}
    assert spec["tp-plan"].message == "2 patterns fit a mesh of 2 (in its ModelSpec)"
    assert spec["tp"].status == "pass" and "tp on a fake mesh of 2" in spec["tp"].message


# --- 7. model output never reaches stdout -----------------------------------------------------


@pytest.mark.slow
def test_zoo_check_keeps_a_models_prints_off_stdout_and_says_them_once(real) -> None:
    result = CliRunner().invoke(cli, ["check", "gpt_like", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["models"][0]["output"][0].startswith("number of parameters")
    assert result.stderr.count("number of parameters") <= 5


# --- 9. overrides from Python, whole errors, the scaffold's test ------------------------------


def test_load_model_takes_config_overrides_like_set(real, tmp_path) -> None:
    model = zoo_core.create_model("gpt_like", n_layer=3, seed=0)
    file = tmp_path / "gpt.safetensors"
    save_file({k: v.clone() for k, v in model.state_dict().items()}, file)  # the tie written twice
    for kwargs in ({"n_layer": 3}, {"overrides": {"n_layer": 3}}):
        loaded = zoo_core.load_model(file, arch="gpt_like", **kwargs)
        assert len(loaded.transformer.h) == 3
    with pytest.raises(zoo_core.WeightsError, match="unexpected"):
        zoo_core.load_model(file, arch="gpt_like")  # 2 layers by default: three do not fit
    with pytest.raises(UsageError, match="given twice"):
        zoo_core.load_model(file, arch="gpt_like", n_layer=3, overrides={"n_layer": 3})
    assert len(zoo_core.load_model("gpt_like", n_layer=1).transformer.h) == 1


def test_a_multi_line_model_error_is_shown_whole(real) -> None:
    with pytest.raises(PluginCodeError) as info:
        zoo_core.create_model("explains_at_length", width=3)
    assert "width must be even, got 3\nthe layer pairs channels two by two\npick 2" in str(
        info.value
    )
    shown = run_zoo("load", "explains_at_length", "--set", "width=3")  # the real exit path
    assert shown.returncode == 1 and "pick 2, 4, 6" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_the_scaffolds_test_reads_the_models_real_fields(tmp_path, monkeypatch) -> None:
    from zoo_core.kit.scaffold import new_plugin
    from zoo_core.plugins.registry import reset_registry

    project = new_plugin("zoo-field", model="field_mlp", directory=tmp_path / "zoo-field")
    model_py = project / "zoo_field" / "model.py"
    text = model_py.read_text().replace("num_classes", "n_out").replace("hidden", "width")
    model_py.write_text(text)  # the author's own fields now; the generated test names none
    test_text = (project / "tests" / "test_zoo_field.py").read_text()
    assert "num_classes" not in test_text and "hidden" not in test_text
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.syspath_prepend(str(project / "tests"))
    monkeypatch.setenv("ZOO_PLUGINS", "zoo_field.plugin")
    reset_registry()
    import test_zoo_field

    try:
        test_zoo_field.test_each_config_field_can_be_given()
    finally:
        for module in list(sys.modules):
            if module.split(".")[0] in ("zoo_field", "test_zoo_field"):
                del sys.modules[module]


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_every_real_model_passes_the_whole_kit_with_no_expected_failures(real, name) -> None:
    report = run_checks(name)
    assert report.passed, [(r.check, r.message) for r in report.results if r.status == "fail"]
    statuses = {r.check: r.status for r in report.results}
    assert "xfail" not in statuses.values()
    assert statuses["fsdp"] == statuses["tied-weights"] == statuses["size-variants"] == "pass"
