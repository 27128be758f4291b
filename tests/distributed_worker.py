"""Run by ``torchrun --nproc-per-node 2`` from tests/test_distributed.py: many cases, one launch.

Each rank loads the prepared sources sharded, compares its local shards and the
forward output with a single-process load of the same source (made here, on
each rank), saves sharded models, and triggers the errors every rank must
raise. It writes what it saw to ``OUT/rank<N>.json`` for the test to assert on;
it asserts nothing itself, so one broken case cannot hide the others.

Usage: torchrun --nproc-per-node 2 tests/distributed_worker.py SOURCES_JSON OUT_DIR
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

import zoo_core
from zoo_core.api import open_model
from zoo_core.models.build import Architecture
from zoo_core.models.tying import tied_groups
from zoo_core.storage.safetensors_io import read_header


def local_shards_match(model: torch.nn.Module, reference: torch.nn.Module) -> list[str]:
    """Keys whose local shard differs from the matching slice of the full tensor."""
    full = reference.state_dict()
    wrong = []
    for key, value in model.state_dict().items():
        if isinstance(value, DTensor):
            (chunk,) = value.__create_chunk_list__()
            local = value.to_local()
            index = tuple(slice(o, o + n) for o, n in zip(chunk.offsets, local.shape, strict=True))
            expected = full[key][index]
        else:
            local, expected = value, full[key]
        if local.dtype != expected.dtype or not torch.equal(local, expected):
            wrong.append(key)
    return wrong


def example(model: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    config = model.config
    if hasattr(config, "vocab_size"):
        return torch.randint(0, config.vocab_size, (3, config.seq_len), generator=generator)
    dtype = next(model.parameters()).dtype
    return torch.randn(3, config.input_dim, generator=generator).to(dtype)


def compare_load(
    source: str, parallel: str, dtype: str | None = None, arch: str | None = None
) -> dict[str, Any]:
    loaded = open_model(source, mesh=MESH, parallel=parallel, dtype=dtype, arch=arch)
    model = loaded.model
    reference = zoo_core.load_model(source, dtype=dtype, arch=arch)
    x = example(reference)
    with torch.no_grad():
        got, want = model(x), reference(x)
    sharded = [k for k, v in model.state_dict().items() if isinstance(v, DTensor)]
    return {
        "wrong_shards": local_shards_match(model, reference),
        "sharded_keys": len(sharded),
        "bit_exact": bool(torch.equal(got, want)),
        "max_diff": float((got.double() - want.double()).abs().max()),
        "bytes_read": loaded.details["bytes_read"],
        "full_bytes": sum(t.numel() * t.element_size() for t in reference.state_dict().values()),
        "dtype": str(next(model.parameters()).dtype),
        "weights_info_equal": getattr(model, "weights_info", None)
        == getattr(reference, "weights_info", None),
        "weights_info_set": getattr(model, "weights_info", None) is not None,
    }


def first_tensor(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else first_tensor(output[0])


def compare_real(source: str, parallel: str) -> dict[str, Any]:
    """A real model (tests/fixtures): shards, one Parameter per tie, counts and outputs."""
    loaded = open_model(source, mesh=MESH, parallel=parallel)
    model = loaded.model
    reference = zoo_core.load_model(source)
    arch = Architecture.of(loaded.entry)
    torch.manual_seed(7)
    x = arch.example_input(reference, 3)
    with torch.no_grad():
        got = first_tensor(arch.forward(model, x))
        want = first_tensor(arch.forward(reference, x))
    ties = tied_groups(reference)
    return {
        "wrong_shards": local_shards_match(model, reference),
        "ties": [list(names) for names in ties],
        "tied_after": [list(names) for names in tied_groups(model)],
        "one_parameter": all(
            model.get_parameter(a) is model.get_parameter(names[0])
            for names in ties
            for a in names[1:]
        ),
        "parameters": sum(p.numel() for p in model.parameters()),
        "reference_parameters": sum(p.numel() for p in reference.parameters()),
        "max_diff": float((got.double() - want.double()).abs().max()),
        "sharded_keys": sum(isinstance(v, DTensor) for v in model.state_dict().values()),
    }


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def compare_save(source: str, parallel: str, out: Path, name: str) -> dict[str, Any]:
    model = zoo_core.load_model(source, mesh=MESH, parallel=parallel)
    written = zoo_core.save_model(model, out / f"saved-{name}")
    result: dict[str, Any] = {"returned": str(written)}
    if RANK == 0:
        reference = zoo_core.load_model(source)
        single = zoo_core.save_model(reference, out / f"single-{name}")
        reloaded = zoo_core.load_model(written)
        result["same_files"] = digests(written) == digests(single)
        result["files"] = sorted(digests(written))
        result["tensors"] = sum(
            len(read_header(f).tensors) for f in Path(written).glob("*.safetensors")
        )
        result["reload_wrong"] = local_shards_match(reloaded, reference)
    dist.barrier()  # rank 1 must not leave (and the test clean up) while rank 0 compares
    return result


def compare_create(parallel: str) -> dict[str, Any]:
    model = zoo_core.create_model("tiny_transformer", seed=3, mesh=MESH, parallel=parallel)
    reference = zoo_core.create_model("tiny_transformer", seed=3)
    return {"wrong_shards": local_shards_match(model, reference)}


def expect_error(call: Any) -> dict[str, Any]:
    try:
        call()
    except zoo_core.ZooError as err:
        return {"error": type(err).__name__, "message": str(err), "hint": err.hint}
    return {"error": None}


def bad_plan(source: str) -> Any:
    from zoo_transformer.model import TinyTransformer

    saved = TinyTransformer.tp_plan
    TinyTransformer.tp_plan = {**saved, "encoder.layers.*.linear9": "colwise"}
    try:
        return expect_error(lambda: zoo_core.load_model(source, mesh=MESH, parallel="tp"))
    finally:
        TinyTransformer.tp_plan = saved


SAVER = """
import itertools, os, sys, torch, zoo_core
directory, stop = sys.argv[1], sys.argv[2]
model = zoo_core.create_model("linear_regression", input_dim=64, output_dim=63, seed=0)
saves = 0
for value in itertools.cycle([1.0, 2.0, 3.0]):
    if os.path.exists(stop):
        break
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    # Alternate layouts too: one file, or the weight and the bias in two shards.
    zoo_core.save_model(model, directory, max_shard_size=20_000 if saves % 2 else None)
    saves += 1
    if saves == 3:
        open(stop + ".saving", "w").close()  # the loads may start: saves are under way
print(saves)
"""

RACE_LOADS = 40


def race_loads(directory: str, stop: str) -> dict[str, Any]:
    """Sharded loads while another process saves into the directory (issue 19, item 2).

    Every save fills all parameters with one value (1, 2 or 3): a load whose ranks hold
    different values, or a rank holding two, mixed two saves.
    """
    import subprocess

    saver = None
    if RANK == 0:
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, directory, stop], stdout=subprocess.PIPE, text=True
        )
        while not Path(stop + ".saving").exists() and saver.poll() is None:
            time.sleep(0.05)
    dist.barrier()
    loads = errors = mixed = 0
    messages: list[str] = []
    for _ in range(RACE_LOADS):
        try:
            model = zoo_core.load_model(directory, mesh=MESH)
        except zoo_core.ZooError as err:
            errors += 1
            messages.append(str(err)[:200])
            continue
        loads += 1
        values = set()
        for tensor in model.state_dict().values():
            local = tensor.to_local() if isinstance(tensor, DTensor) else tensor
            values |= set(local.unique().tolist())
        seen: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(seen, sorted(values))
        if len({v for vs in seen for v in vs}) != 1:
            mixed += 1
    saves = None
    if saver is not None:
        Path(stop).touch()
        out, _ = saver.communicate(timeout=120)
        saves = int(out.strip() or 0)
    dist.barrier()
    return {"loads": loads, "errors": errors, "mixed": mixed, "saves": saves, "messages": messages}


def main() -> None:
    global MESH, RANK
    sources = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    dist.init_process_group("gloo")
    RANK = dist.get_rank()
    MESH = init_device_mesh("cpu", (dist.get_world_size(),))
    cases: dict[str, Any] = {
        "lr_fsdp_single": lambda: compare_load(sources["lr_single"], "fsdp"),
        "lr_fsdp_sharded": lambda: compare_load(sources["lr_sharded"], "fsdp"),
        "lr_fsdp_tiny": lambda: compare_load(sources["lr_tiny"], "fsdp"),
        "variant_fsdp": lambda: compare_load("linear_regression.diabetes", "fsdp"),
        "lr_fsdp_bf16": lambda: compare_load(sources["lr_sharded"], "fsdp", "bfloat16"),
        "tt_fsdp_single": lambda: compare_load(sources["tt_single"], "fsdp"),
        "tt_fsdp_sharded": lambda: compare_load(sources["tt_sharded"], "fsdp"),
        "tt_fsdp_file": lambda: compare_load(sources["tt_file"], "fsdp"),
        "tt_tp_single": lambda: compare_load(sources["tt_single"], "tp"),
        "tt_tp_sharded": lambda: compare_load(sources["tt_sharded"], "tp"),
        "tt_tp_f64": lambda: compare_load(sources["tt_single"], "tp", "float64"),
        "tt_tp_foreign": lambda: compare_load(sources["foreign"], "tp", arch="tiny_transformer"),
        "tt_tp_hub": lambda: compare_load("hf://zoo/tt", "tp"),
        "tt_fsdp_hub": lambda: compare_load("hf://zoo/tt", "fsdp", "bfloat16"),
        "tt_fsdp_uneven": lambda: compare_load(sources["tt_odd"], "fsdp"),
        "save_fsdp": lambda: compare_save(sources["tt_sharded"], "fsdp", out, "tt-fsdp"),
        "save_tp": lambda: compare_save(sources["tt_single"], "tp", out, "tt-tp"),
        "save_lr": lambda: compare_save(sources["lr_sharded"], "fsdp", out, "lr"),
        "create_fsdp": lambda: compare_create("fsdp"),
        "create_tp": lambda: compare_create("tp"),
        "error_indivisible": lambda: expect_error(
            lambda: zoo_core.load_model(sources["tt_odd"], mesh=MESH, parallel="tp")
        ),
        "error_plan": lambda: bad_plan(sources["tt_single"]),
        "error_unreachable": lambda: expect_error(
            lambda: zoo_core.load_model(
                sources["tt_single"] if RANK == 0 else sources["missing"], mesh=MESH
            )
        ),
        # Models as research repositories write them (issue 17): tied, nested, recurrent.
        "gpt_fsdp": lambda: compare_real(sources["gpt"], "fsdp"),
        "gpt_tp": lambda: compare_real(sources["gpt"], "tp"),
        "vit_fsdp": lambda: compare_real(sources["vit"], "fsdp"),
        "rnn_lm_fsdp": lambda: compare_real(sources["rnn_lm"], "fsdp"),
        "save_gpt_fsdp": lambda: compare_save(sources["gpt"], "fsdp", out, "gpt-fsdp"),
        "save_gpt_tp": lambda: compare_save(sources["gpt"], "tp", out, "gpt-tp"),
        # Issue 19: ranks agree on one snapshot, and on files that match config.json.
        "copies_alike": lambda: compare_load(
            sources["tt_single"] if RANK == 0 else sources["tt_copy"], "fsdp"
        ),
        "error_other_config": lambda: expect_error(
            lambda: zoo_core.load_model(
                sources["tt_single"] if RANK == 0 else sources["tt_other_config"], mesh=MESH
            )
        ),
        "error_other_weights": lambda: expect_error(
            lambda: zoo_core.load_model(
                sources["tt_single"] if RANK == 0 else sources["tt_other_weights"], mesh=MESH
            )
        ),
        "race": lambda: race_loads(sources["race"], sources["race_stop"]),
        # After the errors: the job still works (no rank was left inside a collective).
        "after_errors": lambda: compare_load(sources["tt_single"], "tp"),
    }
    results: dict[str, Any] = {}
    for name, case in cases.items():
        try:
            results[name] = case()
        except Exception as err:
            results[name] = {
                "crash": f"{type(err).__name__}: {err}",
                "trace": traceback.format_exc(),
            }
    (out / f"rank{RANK}.json").write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()


MESH: Any = None
RANK = -1

if __name__ == "__main__":
    main()
