"""Exposing a family of existing models at once, without slowing ``zoo list``.

Working a family out by importing its library (torchvision, timm, your own
package) costs seconds, and ``zoo list`` imports every hook module. So the list
is computed once, when the plugin is built or released, and written out as a
JSON file that ships with the plugin; the hook module only reads it back.

At build time (imports the library and torch)::

    from zoo_core.models.families import write_family
    write_family("zoo_vision/family.json", "torchvision.models",
                 names=["resnet18", "resnet34"], prefix="tv_",
                 example_input=("batch", 3, 224, 224))

In the hook module (reads JSON; no torch)::

    from pathlib import Path
    from zoo_core import hookimpl
    from zoo_core.models.families import load_family

    ZOO_PLUGIN_API = 2

    @hookimpl
    def zoo_register_models():
        return load_family(Path(__file__).with_name("family.json"))
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_core.plugins.contract import ModelSpec

__all__ = ["FAMILY_FORMAT", "family_specs", "load_family", "write_family"]

#: The ``format`` field of a family file; bumped if its layout ever changes.
FAMILY_FORMAT = "zoo-family/1"


def _snake(name: str) -> str:
    """``LayerNorm`` -> ``layer_norm``, ``LeakyReLU`` -> ``leaky_relu``, ``resnet18`` stays."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z][a-z])", "_", name).lower()


def _summary(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
    return first[:120]


def family_specs(
    module: str,
    *,
    names: Sequence[str] | None = None,
    prefix: str = "",
    example_input: Any = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    tags: Sequence[str] = (),
) -> list[ModelSpec]:
    """The specs of the models in ``module`` (imports it, so call this at build time).

    Args:
        module: the module that holds the classes or factories.
        names: the attributes to expose; default: every ``nn.Module`` subclass
            defined in ``module`` itself.
        prefix: put before each model name (``"tv_"`` -> ``tv_resnet18``).
        example_input: the input recipe every spec gets (see :class:`ModelSpec`),
            or a dict of recipes by attribute name (``"*"``: the rest).
        defaults: per attribute name, values for its required parameters.
        tags: labels every spec gets.

    Raises:
        ValueError: a name is missing, or is neither an ``nn.Module`` subclass nor
            a function; or a model's config cannot be captured from its signature.
    """
    from torch import nn

    from zoo_core.models.config import signature_config

    mod = importlib.import_module(module)
    defaults = defaults or {}
    if names is None:
        names = sorted(
            n
            for n, obj in vars(mod).items()
            if isinstance(obj, type)
            and issubclass(obj, nn.Module)
            and obj.__module__ == mod.__name__
            and not n.startswith("_")
        )
    specs = []
    for attr in names:
        obj = getattr(mod, attr, None)
        if not ((isinstance(obj, type) and issubclass(obj, nn.Module)) or inspect.isfunction(obj)):
            raise ValueError(f"{module}:{attr} is not an nn.Module subclass or a function")
        try:
            signature_config(obj, defaults.get(attr))  # fails now, not when a user builds it
        except TypeError as err:
            raise ValueError(f"{module}:{attr}: {err}") from None
        specs.append(
            ModelSpec(
                name=prefix + _snake(attr),
                target=f"{module}:{attr}",
                summary=_summary(obj),
                tags=tuple(tags),
                defaults=dict(defaults.get(attr, {})),
                example_input=_recipe(example_input, attr),
            )
        )
    return specs


def _recipe(example_input: Any, attr: str) -> Any:
    if isinstance(example_input, Mapping):
        return example_input.get(attr, example_input.get("*"))
    return example_input


def write_family(path: str | os.PathLike[str], module: str, **options: Any) -> list[ModelSpec]:
    """Work out a family with :func:`family_specs` and write it to ``path`` as JSON.

    The file is what the hook module reads back with :func:`load_family`;
    commit it, or generate it in the plugin's build. Returns the specs written.
    """
    specs = family_specs(module, **options)
    rows = [
        {
            "name": s.name,
            "target": s.target,
            "summary": s.summary,
            "tags": list(s.tags),
            "defaults": dict(s.defaults),
            "example_input": list(s.example_input)
            if isinstance(s.example_input, tuple)
            else s.example_input,
        }
        for s in specs
    ]
    text = json.dumps({"format": FAMILY_FORMAT, "module": module, "models": rows}, indent=1)
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return specs


def load_family(path: str | os.PathLike[str]) -> list[ModelSpec]:
    """Read the specs a :func:`write_family` file holds (JSON only: no torch, no imports).

    Raises:
        ValueError: the file is not a family file, or a spec in it is malformed.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FAMILY_FORMAT:
        raise ValueError(f"{path} is not a zoo family file ({FAMILY_FORMAT})")
    specs = []
    for row in data.get("models", []):
        example = row.get("example_input")
        specs.append(
            ModelSpec(
                name=row["name"],
                target=row["target"],
                summary=row.get("summary", ""),
                tags=tuple(row.get("tags", ())),
                defaults=row.get("defaults", {}),
                example_input=tuple(example) if isinstance(example, list) else example,
            )
        )
    return specs
