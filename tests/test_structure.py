"""The shape of the core: imports flow one way, and no module reaches into another's privates.

Parsed from the source with ``ast``, so the rules hold for imports inside
functions too (the lazy ones that keep ``zoo list`` free of torch).
"""

from __future__ import annotations

import ast
from pathlib import Path

import zoo_core

PACKAGE = Path(zoo_core.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every zoo_core import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "zoo_core":
                found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "zoo_core":
                    found.append((alias.name, [], node.lineno))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, names, _ in _imports(path):
            # ``from zoo_core import contract`` imports the submodule, not the package.
            submodules = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets = submodules if submodules and len(submodules) == len(names) else [module]
            targets += submodules
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def test_no_private_names_are_imported_across_modules() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for module, names, line in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line} {module} {private}")
    assert not offenders, "private names imported across modules:\n" + "\n".join(offenders)


def test_no_import_circles_in_zoo_core() -> None:
    graph = _graph()
    # The package __init__ re-exports the public face; it may import anything, and
    # nothing may import it (``__version__`` lives in a leaf module for that reason).
    importers_of_package = sorted(n for n, deps in graph.items() if "zoo_core" in deps)
    assert importers_of_package == [], (
        f"modules importing the package __init__: {importers_of_package}"
    )
    graph.pop("zoo_core")
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(" -> ".join([*path[path.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_the_plugin_contract_lives_in_one_module() -> None:
    from zoo_core.plugins import contract

    assert zoo_core.ModelSpec is contract.ModelSpec
    assert zoo_core.hookimpl is contract.hookimpl
    assert zoo_core.PLUGIN_API_VERSION == contract.PLUGIN_API_VERSION
    for old in ("spec.py", "hookspecs.py"):
        assert not (PACKAGE / old).exists(), f"zoo_core/{old} duplicates zoo_core/contract.py"


# The layers, bottom first: a module may import its own layer and the ones below it.
# The package __init__ (the public facade) and __main__ stand above them all.
LAYERS = [
    ("errors", "version", "units", "progress", "untrusted"),  # leaves
    ("storage",),
    ("plugins",),
    ("models",),
    ("distributed",),
    ("pretrained",),
    ("hub",),
    ("sources",),
    ("api",),
    ("deploy",),  # export, capability checks and benchmarks: they load models through api
    ("kit", "testing"),
    ("cli",),
]
MAX_MODULE_LINES = 700
MAX_TOP_LEVEL_MODULES = 10


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package __init__
    for level, names in enumerate(LAYERS):
        if parts[1] in names:
            return level
    return None


def test_every_module_belongs_to_a_declared_layer() -> None:
    unplaced = sorted(
        name
        for name in _graph()
        if name not in ("zoo_core", "zoo_core.__main__") and _layer_of(name) is None
    )
    assert not unplaced, f"modules outside the declared layers: {unplaced}"


def test_layers_only_import_downwards() -> None:
    upward = []
    for name, deps in _graph().items():
        level = _layer_of(name)
        if level is None:
            continue
        for dep in sorted(deps):
            dep_level = _layer_of(dep)
            if dep_level is not None and dep_level > level:
                upward.append(f"{name} ({LAYERS[level][0]}) imports {dep} ({LAYERS[dep_level][0]})")
    assert not upward, "imports that look up:\n" + "\n".join(upward)


def test_the_folder_list_is_the_architecture() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    declared = sorted(n for names in LAYERS for n in names if (PACKAGE / n).is_dir())
    assert folders == declared
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"too many modules at the top: {top}"


def test_no_module_is_over_the_size_limit() -> None:
    big = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them by job): {big}"
