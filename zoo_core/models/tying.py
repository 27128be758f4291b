"""Tied weights: one tensor under several names (an embedding shared with the output layer).

A model ties weights by giving two modules the same ``Parameter``
(``self.lm_head.weight = self.wte.weight``). zoo finds the ties on the model
itself, on ``meta`` as well as after a real build, before any tensor is read;
a save stores each tied tensor once (the other names are recorded as aliases of
it, as huggingface_hub does), and a load ties the names again: the model gets
one Parameter, so an optimizer updates it once and ``parameters()`` counts it
once.

>>> import torch
>>> from torch import nn
>>> m = nn.ModuleDict({"wte": nn.Embedding(10, 4), "head": nn.Linear(4, 10, bias=False)})
>>> m.head.weight = m.wte.weight
>>> tied_groups(m)
[('wte.weight', 'head.weight')]
>>> tied_aliases(m)
{'head.weight': 'wte.weight'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from zoo_core.errors import PluginError

__all__ = ["assign_tensors", "retie", "tied_aliases", "tied_groups"]

Groups = list[tuple[str, ...]]


def tied_groups(model: nn.Module) -> Groups:
    """The names of each tensor the state dict holds under several names, in state-dict order.

    Ties are told by identity (one ``Parameter`` or buffer object under several
    names), which holds on ``meta``, on any device and for sharded DTensors.
    The first name of each group is the one a save keeps.
    """
    by_object: dict[int, list[str]] = {}
    for name, value in model.state_dict(keep_vars=True).items():
        by_object.setdefault(id(value), []).append(name)
    return [tuple(names) for names in by_object.values() if len(names) > 1]


def tied_aliases(model: nn.Module) -> dict[str, str]:
    """``{alias: kept}`` for every tied name but the first of its group."""
    return {alias: names[0] for names in tied_groups(model) for alias in names[1:]}


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module_name, _, attr = name.rpartition(".")
    return model.get_submodule(module_name), attr


def _placements(value: torch.Tensor) -> object:
    return getattr(value, "placements", None)


def retie(model: nn.Module, groups: Sequence[Sequence[str]]) -> None:
    """Make each alias of ``groups`` the very object its group's first name holds.

    Loading with ``assign=True`` and tensor parallelism give every module its
    own ``Parameter``; this puts the one object back under every name.

    Raises:
        PluginError: tied names were sharded differently (a tensor-parallel plan
            that splits a tied embedding and output layer along different dims).
    """
    for names in groups:
        holder, attr = _owner(model, names[0])
        kept = holder._parameters.get(attr)
        table = "_parameters"
        if kept is None:
            kept, table = holder._buffers.get(attr), "_buffers"
        if kept is None:
            continue
        for alias in names[1:]:
            owner, alias_attr = _owner(model, alias)
            current = getattr(owner, table).get(alias_attr)
            if current is kept:
                continue
            if current is not None and (
                current.shape != kept.shape or _placements(current) != _placements(kept)
            ):
                raise PluginError(
                    f"{alias} and {names[0]} are one tied tensor, but were placed differently "
                    f"({_placements(current) or tuple(current.shape)} and "
                    f"{_placements(kept) or tuple(kept.shape)})",
                    hint="shard tied modules alike: an nn.Embedding 'rowwise' goes with an "
                    "nn.Linear 'colwise' (both split the vocabulary)",
                )
            getattr(owner, table)[alias_attr] = kept


def assign_tensors(
    model: nn.Module, tensors: Mapping[str, torch.Tensor], *, strict: bool = True
) -> None:
    """``load_state_dict(tensors, assign=True)``, keeping the model's tied weights tied.

    The ties are read from the model before loading (on ``meta`` they are all
    zoo can see), then restored: ``assign`` wraps each name's tensor in a
    ``Parameter`` of its own.
    """
    groups = tied_groups(model)
    model.load_state_dict(dict(tensors), strict=strict, assign=True)
    retie(model, groups)
