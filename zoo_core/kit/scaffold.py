"""``zoo new-plugin``: write a complete plugin project from the template shipped in zoo_core.

The project installs with ``pip install -e DIR``, appears in ``zoo list`` and
passes ``zoo check`` and its own ``pytest`` with no edits; its author then
replaces the example model. Imports no torch.

>>> from zoo_core.kit.scaffold import new_plugin
>>> new_plugin("zoo-mlp", model="tiny_mlp", directory="zoo-mlp")   # doctest: +SKIP
PosixPath('/home/me/zoo-mlp')
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from zoo_core.errors import UsageError, ZooError
from zoo_core.plugins.contract import PLUGIN_API_VERSION
from zoo_core.plugins.registry import canonical_name
from zoo_core.storage.atomic import current_umask

__all__ = [
    "PLACEHOLDER_MODEL_TEXT",
    "PLACEHOLDER_SUMMARY",
    "PluginNames",
    "core_requirement",
    "new_plugin",
    "plugin_names",
]

#: Words of the template's example summary and model docstring; ``zoo check``
#: warns (scaffold-placeholders) while a plugin still carries them.
PLACEHOLDER_SUMMARY = "a two-layer perceptron classifier (placeholder)"
PLACEHOLDER_MODEL_TEXT = "Replace the layers with your architecture."

_DIST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?\Z")  # PEP 508 names
_MODEL = re.compile(r"[a-z][a-z0-9_\-]*\Z")  # ModelSpec names (no dot) that start with a letter
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Files whose real names the packaging tools would treat specially inside zoo_core.
_RENAMED = {"gitignore": ".gitignore"}


@dataclass(frozen=True)
class PluginNames:
    """The names a new plugin project is written with (the template's placeholders)."""

    dist: str  # the distribution, as typed: zoo-transformer
    package: str  # the import package: zoo_transformer
    entry_point: str  # the entry-point name in the group "zoo": transformer
    model: str  # the model name users type: tiny_transformer
    model_class: str  # TinyTransformer
    config_class: str  # TinyTransformerConfig
    core_requirement: str  # zoo-core>=0.1,<0.2
    core_version: str
    api_version: str


def core_requirement(version: str) -> str:
    """The zoo-core range a new plugin depends on: releases that keep this plugin API.

    >>> core_requirement("0.1.0"), core_requirement("1.4.2")
    ('zoo-core>=0.1,<0.2', 'zoo-core>=1.4,<2')
    """
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    if major == 0:  # before 1.0 a minor release may break plugins
        return f"zoo-core>={major}.{minor},<{major}.{minor + 1}"
    return f"zoo-core>={major}.{minor},<{major + 1}"


def plugin_names(name: str, model: str | None = None) -> PluginNames:
    """Derive the package, entry point and class names from a distribution name.

    Raises:
        UsageError: ``name`` is not a valid distribution name, or ``model`` is
            not a valid model name.

    >>> plugin_names("zoo-transformer", "tiny_transformer").model_class
    'TinyTransformer'
    """
    from zoo_core.version import __version__

    if not _DIST.match(name):
        raise UsageError(
            f"{name!r} is not a valid distribution name",
            hint="use letters, digits, '-', '_' and '.', e.g. zoo-mlp",
        )
    package = canonical_name(name).replace("-", "_")
    if not package.isidentifier() or keyword.iskeyword(package):
        raise UsageError(
            f"{name!r} does not give a Python package name ({package!r})",
            hint="start the name with a letter, e.g. zoo-mlp",
        )
    short = canonical_name(name).removeprefix("zoo-") or canonical_name(name)
    model = model if model is not None else short.replace("-", "_")
    if not _MODEL.match(model):
        raise UsageError(
            f"{model!r} is not a valid model name",
            hint="use lower-case letters, digits, '_' or '-', starting with a letter (no dot)",
        )
    model_class = "".join(part[:1].upper() + part[1:] for part in re.split(r"[_.\-]+", model))
    return PluginNames(
        dist=name,
        package=package,
        entry_point=short,
        model=model,
        model_class=model_class,
        config_class=f"{model_class}Config",
        core_requirement=core_requirement(__version__),
        core_version=__version__,
        api_version=str(PLUGIN_API_VERSION),
    )


def _render(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _walk(node: Traversable, relative: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    found = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            if child.name != "__pycache__":
                found.extend(_walk(child, (*relative, child.name)))
        elif child.name.endswith(".tmpl"):
            found.append(((*relative, child.name), child.read_text(encoding="utf-8")))
    return found


def template_files(names: PluginNames) -> dict[str, str]:
    """The project's files as ``{relative path: text}``, rendered from the template."""
    values = asdict(names)
    root = resources.files("zoo_core.kit") / "templates" / "plugin"
    files = {}
    for parts, text in _walk(root):
        *dirs, last = (_render(p, values) for p in parts)
        last = last.removesuffix(".tmpl")
        last = _RENAMED.get(last, last)
        files["/".join((*dirs, last))] = _render(text, values)
    if not files:
        raise ZooError("the plugin template is missing from this zoo-core installation")
    return files


def new_plugin(
    name: str, *, model: str | None = None, directory: str | os.PathLike[str] | None = None
) -> Path:
    """Write a new plugin project for distribution ``name`` into ``directory``.

    Args:
        name: the distribution name (``zoo-transformer``); the package is its
            Python form (``zoo_transformer``).
        model: the model it registers; default: ``name`` without ``zoo-``.
        directory: where to write it; default: ``./NAME``. It must not exist,
            or be empty.

    Returns:
        The project directory. It is written in a temporary sibling and renamed
        into place, so a failure leaves nothing half-written.

    Raises:
        UsageError: a bad name or model name.
        ZooError: ``directory`` exists and is not empty.
    """
    names = plugin_names(name, model)
    target = Path(os.path.abspath(directory if directory is not None else names.dist))
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ZooError(
            f"{target} already exists and is not an empty directory",
            hint="choose another directory with -o DIR; nothing was written",
        )
    files = template_files(names)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.zoo-new-", dir=target.parent))
    try:
        for relative, text in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        # mkdtemp makes the directory 0700; a project should get the usual mode.
        os.chmod(tmp, 0o777 & ~current_umask())
        if target.exists():
            target.rmdir()  # empty, checked above; rename cannot replace it everywhere
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
