"""Checks of building, training and saving: meta builds, TP plans, gradients, save/load."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from zoo_core.distributed.sharding import plan_problems
from zoo_core.kit.framework import (
    SEED,
    Failed,
    Skipped,
    Subject,
    check,
    describe_error,
    few_names,
    forward_tensors,
    input_shapes,
    not_finite,
    shape_text,
)
from zoo_core.models.build import config_of
from zoo_core.models.tying import tied_groups
from zoo_core.storage.safetensors_io import read_header


@check(
    "build-meta",
    reason="load_model builds on the meta device and then assigns the saved tensors",
    hint="do not read tensor values in __init__ (.item(), .tolist(), numpy, data-dependent "
    "shapes); compute sizes from the config",
    needs=("config-defaults",),
)
def _check_build_meta(s: Subject) -> str:
    try:
        model = s.arch.build_meta(s.config())
        with torch.device("meta"):
            x = s.arch.example_input(model, 1)
    except Exception as err:
        raise Failed(f"building on meta raised {describe_error(err)}") from err
    real = [n for n, t in model.state_dict().items() if not t.is_meta]
    if real:
        raise Failed(f"built on meta, but {few_names(real)} hold real data")
    count = sum(p.numel() for p in model.parameters())
    return f"{count:,} parameters, example input {input_shapes(x)}"


@check(
    "tp-plan",
    reason="load_model(..., mesh=mesh, parallel='tp') shards the modules a declared tp_plan names",
    hint="map module name patterns ('layers.*.fc1', * matches one name part) of nn.Linear or "
    "nn.Embedding layers to 'colwise', 'rowwise' or 'replicate', with sizes even",
    needs=("build-meta",),
)
def _check_tp_plan(s: Subject) -> str:
    model = s.arch.build_meta(s.config())
    # The built model's class (a factory's too) or the spec: where a load looks for it.
    spec_plan = s.entry.spec.tp_plan if s.entry is not None else {}
    plan = spec_plan or getattr(type(model), "tp_plan", None)
    if plan is None or (isinstance(plan, Mapping) and not plan):
        return "declares no tensor-parallel plan (parallel='tp' is not offered)"
    problems = plan_problems(model, plan, mesh_size=2)
    if problems:
        raise Failed("; ".join(problems))
    return f"{len(plan)} patterns fit a mesh of 2" + (" (in its ModelSpec)" if spec_plan else "")


@check(
    "build-cpu",
    reason="create_model builds with real, finite initial weights",
    hint="make __init__ build every layer from the config and initialise it to finite values",
    needs=("config-defaults",),
)
def _check_build_cpu(s: Subject) -> str:
    try:
        model = s.build()
    except Exception as err:
        raise Failed(f"building raised {describe_error(err)}") from err
    state = model.state_dict()
    off = [n for n, t in state.items() if t.device.type != "cpu"]
    if off:
        raise Failed(f"{few_names(off)} are not on the cpu device it was built on")
    bad = [n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise Failed(f"freshly initialised {few_names(bad)} hold NaN or infinity")
    return f"{sum(p.numel() for p in model.parameters()):,} parameters"


@check(
    "forward-finite",
    reason="zoo load, summaries and these checks run forward on example_input",
    hint="return from example_input(batch_size) a tensor forward accepts, on the model's "
    "device and dtype (self.randn_like_input helps), and keep outputs finite",
    needs=("build-cpu",),
)
def _check_forward_finite(s: Subject) -> str:
    model = s.build().eval()
    x = s.example(model)
    with torch.no_grad():
        outputs = forward_tensors(model, x)
    if not_finite(outputs):
        raise Failed(f"forward on example_input {input_shapes(x)} gave NaN or infinity")
    return f"{input_shapes(x)} -> {', '.join(shape_text(t) for t in outputs)}"


@check(
    "gradients",
    reason="a parameter with no gradient is a layer defined but unused, or work done outside "
    "forward, where autograd cannot see it",
    hint="use every layer in forward, or delete it; move computation from __init__ into forward; "
    "freeze on purpose with requires_grad_(False)",
    needs=("forward-finite",),
)
def _check_gradients(s: Subject) -> str:
    model = s.build().train()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        return "no trainable parameters"
    outputs = [t for t in forward_tensors(model, s.example(model)) if t.is_floating_point()]
    graph = [t for t in outputs if t.requires_grad]
    if not graph:
        raise Failed("no output of forward depends on any parameter")
    # A random projection of every output: a plain sum would give exactly zero
    # gradient behind a softmax and hide nothing, but it would also prove nothing.
    generator = torch.Generator().manual_seed(SEED)
    loss = sum(
        (t.float() * torch.randn(t.shape, generator=generator).to(t.device)).sum() for t in graph
    )
    loss.backward()  # type: ignore[union-attr]
    missing = [n for n, p in trainable if p.grad is None]
    if missing:
        raise Failed(f"{len(missing)} trainable parameter(s) got no gradient: {few_names(missing)}")
    bad = [n for n, p in trainable if not torch.isfinite(p.grad).all()]  # type: ignore[arg-type]
    if bad:
        raise Failed(f"gradients of {few_names(bad)} hold NaN or infinity")
    return f"all {len(trainable)} trainable parameters got a gradient"


@check(
    "state-dict-stable",
    reason="saved weights are matched to a fresh model by key name, shape and dtype",
    hint="name submodules from the config only (no counters, ids or random names) and build "
    "them in a fixed order",
    needs=("build-cpu",),
)
def _check_state_dict_stable(s: Subject) -> str:
    first, second = s.build(seed=SEED).state_dict(), s.build(seed=SEED + 1).state_dict()
    if list(first) != list(second):
        only = sorted(set(first) ^ set(second))
        detail = f"keys differ: {few_names(only)}" if only else "the key order differs"
        raise Failed(f"two builds of the same config have different state dicts ({detail})")
    changed = [
        k for k in first if (first[k].shape, first[k].dtype) != (second[k].shape, second[k].dtype)
    ]
    if changed:
        raise Failed(f"two builds give {few_names(changed)} different shapes or dtypes")
    return f"{len(first)} keys, same names, shapes and dtypes"


@check(
    "seed-deterministic",
    reason="create_model(seed=N) and zoo save --seed N promise reproducible weights",
    hint="initialise only with torch's random functions (torch.nn.init, torch.randn), "
    "never Python's random, numpy or the clock",
    needs=("build-cpu",),
)
def _check_seed_deterministic(s: Subject) -> str:
    first, second = s.build().state_dict(), s.build().state_dict()
    if list(first) != list(second):
        raise Failed("two builds with the same seed have different state-dict keys")
    differ = [k for k in first if not torch.equal(first[k], second[k])]
    if differ:
        raise Failed(f"two builds with seed {SEED} differ in {few_names(differ)}")
    return f"two builds with seed {SEED} are bit-identical"


@check(
    "save-load-exact",
    reason="weights shared through zoo save / zoo push must come back bit-exact",
    hint="register every tensor forward uses as a parameter or a buffer (not a plain "
    "attribute) and keep state_dict() untouched",
    needs=("build-cpu", "forward-finite", "config-json", "build-meta"),
)
def _check_save_load(s: Subject) -> str:
    if s.entry is None:
        raise Skipped("the class is not registered by a plugin, so it cannot be saved")
    from zoo_core.api import load_model, save_model

    model = s.build().eval()
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        try:
            save_model(model, Path(tmp) / "model")
            loaded = load_model(Path(tmp) / "model")
        except Exception as err:
            raise Failed(f"save_model -> load_model raised {describe_error(err)}") from err
        if type(loaded) is not type(model):
            raise Failed(f"loaded a {type(loaded).__qualname__}, not a {type(model).__qualname__}")
        if config_of(loaded) != config_of(model):
            raise Failed(f"the config came back as {config_of(loaded)!r}")
        saved, back = model.state_dict(), loaded.state_dict()
        if list(saved) != list(back):
            raise Failed(f"keys differ after loading: {few_names(sorted(set(saved) ^ set(back)))}")
        differ = [
            k
            for k in saved
            if saved[k].dtype != back[k].dtype or not torch.equal(saved[k], back[k])
        ]
        if differ:
            raise Failed(f"{few_names(differ)} changed between save and load")
        x = s.example(model)
        with torch.no_grad():
            before = forward_tensors(model, x)
            try:
                after = forward_tensors(loaded, x)
            except Failed as err:
                raise Failed(f"the loaded model fails: {err}") from err
    if len(before) != len(after) or not all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(before, after, strict=False)
    ):
        raise Failed("the loaded model's outputs differ from the saved model's")
    return f"{len(saved)} tensors and the outputs are bit-identical after loading"


@check(
    "tied-weights",
    reason="weights a model ties (an embedding shared with its output layer) must come back "
    "as one Parameter: two copies are trained apart and counted twice",
    hint="tie in __init__ by giving both modules one Parameter (self.head.weight = "
    "self.embed.weight), whatever the device: zoo sees ties on the meta device, before loading",
    needs=("save-load-exact",),
)
def _check_tied_weights(s: Subject) -> str:
    from zoo_core.api import load_model, save_model

    model = s.build().eval()
    groups = tied_groups(model)
    on_meta = tied_groups(s.arch.build_meta(s.config()))
    if groups != on_meta:
        raise Failed(
            f"built normally the model ties {_ties(groups)}, but on meta {_ties(on_meta)}; "
            "load_model builds on meta, so these ties do not survive loading"
        )
    if not groups:
        return "no tied weights"
    with tempfile.TemporaryDirectory(prefix="zoo-check-") as tmp:
        path = save_model(model, Path(tmp) / "model")
        stored = {k for f in path.glob("*.safetensors") for k in read_header(f).tensors}
        loaded = load_model(path)
    twice = [names for names in groups if len(stored & set(names)) > 1]
    if twice:
        raise Failed(f"the saved file holds {_ties(twice)} more than once")
    after = tied_groups(loaded)
    if after != groups:
        raise Failed(f"after loading, the model ties {_ties(after)} instead of {_ties(groups)}")
    counts = sum(p.numel() for p in model.parameters()), sum(p.numel() for p in loaded.parameters())
    if counts[0] != counts[1]:
        raise Failed(f"{counts[0]:,} parameters before saving, {counts[1]:,} after loading")
    return f"{_ties(groups)}: one tensor in the file, one Parameter after loading"


def _ties(groups: list[tuple[str, ...]]) -> str:
    return ", ".join(" = ".join(names) for names in groups) or "nothing"
