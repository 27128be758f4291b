"""Sharded load and save under a real ``torchrun --nproc-per-node 2`` (gloo, CPU).

One launch runs every case (tests/distributed_worker.py) and leaves one JSON
report per rank; the tests below assert on those reports. Plan checks that
need no processes run in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from safetensors.torch import save_file
from torch import nn

import zoo_core
from tests.conftest import FIXTURES, run_zoo
from zoo_core.distributed.sharding import plan_problems, tp_plan
from zoo_core.plugins.registry import reset_registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubserver import client_env, start_server_subprocess, stop_server_subprocess

WORKER = Path(__file__).with_name("distributed_worker.py")
# A large config for linear_regression: 2 MB of weights, an odd output size so that
# FSDP's dim-0 shards are uneven (257 rows on rank 0, 256 on rank 1).
LR_CONFIG = {"input_dim": 1024, "output_dim": 513}
# Models as research repositories write them (tests/fixtures/real_models_plugin.py).
REAL = {"gpt": "gpt_like", "vit": "vit_like", "rnn_lm": "rnn_lm"}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("dist")
    lr = zoo_core.create_model("linear_regression", seed=0, **LR_CONFIG)
    tt = zoo_core.create_model("tiny_transformer", seed=1)
    sources = {
        "lr_single": zoo_core.save_model(lr, root / "lr-single"),
        # weight and bias land in separate shard files
        "lr_sharded": zoo_core.save_model(lr, root / "lr-sharded", max_shard_size=1_000_000),
        # output_dim=1: rank 1's shards of the weight and the bias are empty
        "lr_tiny": zoo_core.save_model(
            zoo_core.create_model("linear_regression", seed=0, input_dim=3), root / "lr-tiny"
        ),
        "tt_single": zoo_core.save_model(tt, root / "tt-single"),
        "tt_sharded": zoo_core.save_model(tt, root / "tt-sharded", max_shard_size=100_000),
        "tt_odd": zoo_core.save_model(
            zoo_core.create_model("tiny_transformer", seed=2, dim_feedforward=129),
            root / "tt-odd",
        ),
        "missing": root / "nowhere" / "tt",
    }
    assert len(list(sources["lr_sharded"].glob("*.safetensors"))) == 2
    assert len(list(sources["tt_sharded"].glob("*.safetensors"))) > 2
    sources["tt_file"] = sources["tt_single"] / "model.safetensors"
    # Real models (issue 17), registered from tests/fixtures for this process and the ranks.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FIXTURES))
        patch.setenv("ZOO_PLUGINS", "real_models_plugin")
        reset_registry()
        for name in ("gpt", "vit", "rnn_lm"):
            model = zoo_core.create_model(REAL[name], seed=0)
            sources[name] = zoo_core.save_model(model, root / name)
    reset_registry()
    # Issue 19: "per-node copies", one per rank: alike, of another config, of other weights
    # under the same config.json (which then records hashes they do not have).
    sources["tt_copy"] = root / "tt-copy"
    shutil.copytree(sources["tt_single"], sources["tt_copy"])
    sources["tt_other_config"] = zoo_core.save_model(
        zoo_core.create_model("tiny_transformer", seed=1, num_classes=3), root / "tt-config"
    )
    sources["tt_other_weights"] = root / "tt-weights"
    shutil.copytree(sources["tt_single"], sources["tt_other_weights"])
    other = zoo_core.save_model(zoo_core.create_model("tiny_transformer", seed=5), root / "tt5")
    shutil.copy(other / "model.safetensors", sources["tt_other_weights"] / "model.safetensors")
    constant = zoo_core.create_model("linear_regression", input_dim=64, output_dim=63)
    for parameter in constant.parameters():
        parameter.data.fill_(1.0)  # the race's saves fill every parameter with one value
    sources["race"] = zoo_core.save_model(constant, root / "race")
    sources["race_stop"] = root / "race-stop"
    # weights saved by another tool: no zoo record, loaded with arch=
    sources["foreign"] = root / "foreign.safetensors"
    save_file({k: v.contiguous() for k, v in tt.state_dict().items()}, sources["foreign"])
    (root / "sources.json").write_text(json.dumps({k: str(v) for k, v in sources.items()}))
    out = root / "out"
    out.mkdir()
    # hf://: the real huggingface_hub client against tests/hubserver.py; both ranks
    # download into one cache, as processes on one machine do.
    url, server = start_server_subprocess(root / "hub", token=None, user="zoo")
    try:
        hub_env = client_env(url, root / "hf-home")
        pushed = run_zoo("push", str(sources["tt_sharded"]), "zoo/tt", **hub_env)
        assert pushed.returncode == 0, pushed.stderr
        env = {**os.environ, **hub_env, "OMP_NUM_THREADS": "1", "ZOO_PLUGINS": "real_models_plugin"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FIXTURES), env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc-per-node", "2", str(WORKER), str(root / "sources.json"), str(out)]
        # A hang (a rank stuck in a collective) fails here instead of blocking the suite.
        proc = subprocess.run(command, capture_output=True, text=True, timeout=420, env=env)
    finally:
        stop_server_subprocess(server)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def case(reports: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    results = [r[name] for r in reports]
    for result in results:
        assert "crash" not in result, result.get("trace")
    return results


LOADS = [
    ("lr_fsdp_single", True),
    ("lr_fsdp_sharded", True),
    ("lr_fsdp_tiny", True),
    ("lr_fsdp_bf16", True),
    ("variant_fsdp", True),
    ("tt_fsdp_single", True),
    ("tt_fsdp_sharded", True),
    ("tt_fsdp_file", True),
    ("tt_fsdp_uneven", True),
    ("tt_tp_single", False),
    ("tt_tp_sharded", False),
    ("tt_tp_f64", False),
    ("tt_tp_hub", False),
    ("tt_tp_foreign", False),
    ("tt_fsdp_hub", True),
    ("after_errors", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "exact"), LOADS)
def test_each_rank_holds_its_slices_and_forward_matches(reports, name, exact) -> None:
    for result in case(reports, name):
        assert result["wrong_shards"] == []
        assert result["sharded_keys"] > 0
        if exact:  # FSDP all-gathers the very same numbers before each forward
            assert result["bit_exact"], result["max_diff"]
        else:  # row-parallel layers sum partial products in another order
            assert result["max_diff"] < 1e-5
    if name.endswith("_bf16"):
        assert {r["dtype"] for r in case(reports, name)} == {"torch.bfloat16"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lr_fsdp_single", "lr_fsdp_sharded", "tt_fsdp_single"])
def test_fsdp_ranks_read_only_their_own_bytes(reports, name) -> None:
    rank0, rank1 = case(reports, name)
    # Every byte is read once, by one rank, and the halves differ by at most a row.
    assert rank0["bytes_read"] + rank1["bytes_read"] == rank0["full_bytes"]
    assert max(rank0["bytes_read"], rank1["bytes_read"]) < 0.52 * rank0["full_bytes"]


@pytest.mark.slow
def test_tp_ranks_read_their_shards_and_the_replicated_rest(reports) -> None:
    rank0, rank1 = case(reports, "tt_tp_single")
    assert rank0["bytes_read"] == rank1["bytes_read"] < rank0["full_bytes"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["save_fsdp", "save_tp", "save_lr"])
def test_sharded_save_is_an_ordinary_directory_with_the_same_hashes(reports, name) -> None:
    rank0, rank1 = case(reports, name)
    assert rank0["returned"] == rank1["returned"]
    assert rank0["same_files"], rank0["files"]
    assert "config.json" in rank0["files"]
    assert rank0["reload_wrong"] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gpt_fsdp", "gpt_tp", "vit_fsdp", "rnn_lm_fsdp"])
def test_real_models_shard_with_their_ties_and_nested_blocks(reports, name) -> None:
    for result in case(reports, name):
        assert result["wrong_shards"] == [] and result["sharded_keys"] > 0
        assert result["tied_after"] == result["ties"] and result["one_parameter"]
        assert result["parameters"] == result["reference_parameters"]
        assert result["max_diff"] < 1e-5
    if name != "vit_fsdp":
        assert case(reports, name)[0]["ties"]  # the tie is there, and survived


@pytest.mark.slow
@pytest.mark.parametrize("name", ["save_gpt_fsdp", "save_gpt_tp"])
def test_a_sharded_save_of_a_tied_model_is_the_single_process_file(reports, name) -> None:
    rank0, rank1 = case(reports, name)
    assert rank0["returned"] == rank1["returned"]
    assert rank0["same_files"], rank0["files"]  # identical sha256, config.json included
    assert rank0["tensors"] == 28  # 29 names, the tied embedding stored once
    assert rank0["reload_wrong"] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["create_fsdp", "create_tp"])
def test_create_model_on_a_mesh_shards_the_seeded_weights(reports, name) -> None:
    for result in case(reports, name):
        assert result["wrong_shards"] == []


@pytest.mark.slow
def test_a_mesh_that_does_not_divide_the_plan_fails_on_every_rank(reports) -> None:
    for result in case(reports, "error_indivisible"):
        assert result["error"] == "UsageError"
        assert "encoder.layers.0.linear1" in result["message"]
        assert "out_features=129" in result["message"]


@pytest.mark.slow
def test_a_plan_naming_a_missing_module_fails_on_every_rank(reports) -> None:
    for result in case(reports, "error_plan"):
        assert result["error"] == "UsageError"
        assert "'encoder.layers.*.linear9' matches no module" in result["message"]


@pytest.mark.slow
def test_a_rank_that_cannot_reach_the_file_fails_every_rank(reports) -> None:
    rank0, rank1 = case(reports, "error_unreachable")
    assert rank1["error"] == "SourceNotFoundError"
    assert "nowhere" in rank1["message"]
    assert rank0["error"] == "DistributedError"
    assert rank0["message"].startswith("rank 1 of 2 failed: no such file or directory")


# --- issue 19: one snapshot, the same files on every rank ----------------------------------


@pytest.mark.slow
def test_a_sharded_variant_carries_its_weights_info(reports) -> None:
    for result in case(reports, "variant_fsdp"):
        assert result["weights_info_set"] and result["weights_info_equal"]


@pytest.mark.slow
def test_ranks_reading_identical_copies_load(reports) -> None:
    for result in case(reports, "copies_alike"):
        assert result["wrong_shards"] == [] and result["bit_exact"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("error_other_config", "the ranks opened different models"),
        ("error_other_weights", "rank 1's copy of"),
    ],
)
def test_ranks_reading_different_files_fail_on_every_rank(reports, name, said) -> None:
    for result in case(reports, name):
        assert result["error"] == "WeightsError", result
        assert said in result["message"]
    if name == "error_other_weights":
        assert "model.safetensors" in result["message"] and "sha256" in result["message"]


@pytest.mark.slow
def test_sharded_loads_racing_saves_never_mix_two_saves(reports) -> None:
    rank0, rank1 = case(reports, "race")
    print(
        f"saves={rank0['saves']} loads={rank0['loads']} (of {rank0['loads'] + rank0['errors']}) "
        f"mixed={rank0['mixed']} refused={rank0['errors']}"
    )
    assert rank0["mixed"] == rank1["mixed"] == 0
    assert rank0["loads"] == rank1["loads"] and rank0["errors"] == rank1["errors"]
    assert rank0["saves"] >= 10
    assert rank0["loads"] >= 30, rank0["messages"]  # a few may give up, saying so
    for message in rank0["messages"]:
        assert "replaced by saves" in message


# --- plans, in-process ----------------------------------------------------------------------


def test_tiny_transformer_declares_a_plan_that_fits() -> None:
    model = zoo_core.create_model("tiny_transformer", device="meta")
    plan = tp_plan(type(model))
    assert plan == {"encoder.layers.*.linear1": "colwise", "encoder.layers.*.linear2": "rowwise"}
    assert plan_problems(model, mesh_size=2) == []
    assert plan_problems(model, mesh_size=4) == []


def test_plan_problems_name_every_mistake() -> None:
    model = zoo_core.create_model("tiny_transformer", device="meta", dim_feedforward=129)
    problems = plan_problems(
        model,
        {
            "encoder.layers.*.linear1": "colwise",
            "encoder.layers.*.self_attn": "colwise",
            "encoder.nothing": "rowwise",
            "head": "diagonal",
            "norm": "replicate",
        },
        mesh_size=2,
    )
    assert problems == [
        "encoder.layers.0.linear1: colwise splits out_features=129, which a mesh of 2 "
        "does not divide",
        "encoder.layers.1.linear1: colwise splits out_features=129, which a mesh of 2 "
        "does not divide",
        "encoder.layers.0.self_attn is a MultiheadAttention; colwise shards only nn.Linear "
        "and nn.Embedding",
        "encoder.layers.1.self_attn is a MultiheadAttention; colwise shards only nn.Linear "
        "and nn.Embedding",
        "'encoder.nothing' matches no module",
        "'head' has style 'diagonal'; use one of colwise, rowwise, replicate",
    ]


def test_embeddings_shard_by_vocabulary_rowwise_and_by_width_colwise() -> None:
    model = nn.Sequential(nn.Embedding(10, 6))
    assert plan_problems(model, {"0": "rowwise"}, mesh_size=2) == []
    assert plan_problems(model, {"0": "colwise"}, mesh_size=4) == [
        "0: colwise splits embedding_dim=6, which a mesh of 4 does not divide"
    ]


def test_a_model_without_a_plan_has_none() -> None:
    assert tp_plan(type(zoo_core.create_model("linear_regression"))) == {}


def test_the_kit_checks_a_declared_plan() -> None:
    from zoo_core.testing import run_checks
    from zoo_linear.model import LinearRegression

    class Planned(LinearRegression):
        tp_plan: ClassVar[dict[str, str]] = {"linear": "colwise", "nothing": "rowwise"}

    (result,) = [r for r in run_checks(Planned, only=["tp-plan"]).results if r.check == "tp-plan"]
    assert result.status == "fail"
    assert result.message == (
        "linear: colwise splits out_features=1, which a mesh of 2 does not divide; "
        "'nothing' matches no module"
    )
    (ok,) = [r for r in run_checks("tiny_transformer", only=["tp-plan"]).results]
    assert (ok.status, ok.message) == ("pass", "2 patterns fit a mesh of 2")
