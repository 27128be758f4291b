"""Plugin discovery and model-name resolution.

Plugins are found through the ``zoo`` entry-point group (and, for development,
the ``ZOO_PLUGINS`` environment variable) and registered with a pluggy
``PluginManager``. Each plugin's hook is called on its own, so one that fails to
import, raises or returns garbage is recorded as broken while the others work.

A plugin is trusted code, but its mistakes must not become zoo's. Each one is
imported and each of its hooks called (``zoo_register_weights`` too, with or
without the plugin cache) under a guard (:func:`run_guarded`: a worker thread
the caller waits for) that

- sends whatever it prints to stderr, so ``zoo list --json`` stays JSON;
- turns ``sys.exit``, ``SystemExit`` and any other ``BaseException`` it raises
  into a broken plugin instead of the end of the process;
- abandons it after ``ZOO_PLUGIN_TIMEOUT`` seconds (default 20, at most
  :data:`MAX_PLUGIN_TIMEOUT`), marking the plugin broken, so an endless hook
  cannot hang every command, even one that catches every exception;
- is timed: one slower than :data:`SLOW_PLUGIN_SECONDS` is named in a warning,
  because every command waits for it.

Plugins the cache remembers (:mod:`zoo_core.plugins.cache`) run no code at all.

A user's Ctrl-C still interrupts discovery; a ``KeyboardInterrupt`` a plugin
raises by itself marks it broken.

Names: a bare name (``simple_cnn``) resolves only when exactly one plugin
registers it; ``DIST:NAME`` (``zoo-cnn:simple_cnn``) always does. Conflicts are
reported, never settled by load order. Nothing here imports torch.

>>> from zoo_core.plugins.registry import get_registry
>>> entry = get_registry().resolve("simple_cnn")        # doctest: +SKIP
>>> entry.qualified_name, entry.spec.target             # doctest: +SKIP
('zoo-cnn:simple_cnn', 'zoo_cnn.model:SimpleCNN')
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pluggy

from zoo_core.errors import (
    AmbiguousModelError,
    ModelNotFoundError,
    PluginError,
    PluginNotInstalledError,
)
from zoo_core.plugins import contract
from zoo_core.plugins.cache import PluginCache, entry_points, load_entry_point
from zoo_core.plugins.contract import (
    ENTRY_POINT_GROUP,
    PLUGIN_API_ATTRIBUTE,
    PLUGIN_API_VERSION,
    PROJECT_NAME,
    ModelSpec,
    check_capabilities,
    plugin_api_problem,
)
from zoo_core.plugins.guard import call_hook, describe, run_guarded
from zoo_core.plugins.memo import CACHED_HOOKS, encode_results, plugin_identity, remembered
from zoo_core.storage.limits import env_seconds
from zoo_core.untrusted import clean_text, install_requirement
from zoo_core.version import __version__

__all__ = [
    "ModelEntry",
    "PluginInfo",
    "Registry",
    "ZooPluginWarning",
    "canonical_name",
    "get_registry",
    "hook_impls",
    "hook_name",
    "list_models",
    "reset_registry",
]


TIMEOUT_ENV = "ZOO_PLUGIN_TIMEOUT"
DEFAULT_PLUGIN_TIMEOUT = 20.0
# A hook taking an hour is broken; a larger value is a mistake (1e10 once broke every plugin).
MAX_PLUGIN_TIMEOUT = 3600.0
# Importing a hook module and calling its hook should take milliseconds; past this, every
# command is visibly slower, so the plugin is named.
SLOW_PLUGIN_SECONDS = 1.0


class ZooPluginWarning(UserWarning):
    """Issued once per broken, incompatible or slow plugin when the registry is built."""


class _IncompatiblePlugin(Exception):
    def __init__(self, message: str, api_version: Any) -> None:
        super().__init__(message)
        self.api_version = api_version


def canonical_name(name: str) -> str:
    """Normalise a distribution or module name the way PyPI does (``Zoo_CNN`` -> ``zoo-cnn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PluginInfo:
    """One discovered plugin: where it came from and whether it works.

    ``name`` is its qualifier in ``DIST:NAME``: the distribution name for an
    installed plugin, the module name for one given in ``ZOO_PLUGINS``.
    ``status`` is ``"ok"``, ``"broken"`` (``error`` says why), ``"incompatible"``
    (it targets a plugin API this zoo-core does not provide; ``error`` says what
    it needs and what is installed) or ``"disabled"``. ``api_version`` is the
    plugin API its hook module declares (``ZOO_PLUGIN_API``), None if it declares none.
    """

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    source: str = "entry-point"
    status: str = "ok"
    error: str | None = None
    models: tuple[str, ...] = ()
    api_version: int | None = None
    seconds: float | None = None

    @property
    def slow(self) -> bool:
        """Whether importing it and calling its hook took over :data:`SLOW_PLUGIN_SECONDS`."""
        return self.seconds is not None and self.seconds > SLOW_PLUGIN_SECONDS

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "entry_point": self.entry_point,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "models": list(self.models),
            "api_version": self.api_version,
        }


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its spec and the plugin that provides it."""

    spec: ModelSpec
    plugin: PluginInfo
    conflicted: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualified_name(self) -> str:
        return f"{self.plugin.name}:{self.spec.name}"

    @property
    def display_name(self) -> str:
        """The shortest name that resolves to this entry."""
        return self.qualified_name if self.conflicted else self.spec.name

    def load_class(self) -> Any:
        """Import the model target named by the spec (this imports torch).

        The target is a ``ZooModel`` subclass, or (plugin API 2) any
        ``nn.Module`` subclass or a function that returns one.

        Raises:
            PluginError: the target does not import or is not a model class or factory.
        """
        from torch import nn

        module_name, _, attr = self.spec.target.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except Exception as err:  # a plugin's import can fail in any way
            raise PluginError(
                f"plugin {self.plugin.name} cannot import {self.spec.target} "
                f"for {self.spec.name!r}: {type(err).__name__}: {err}",
                hint=f"reinstall or fix {self.plugin.distribution or self.plugin.module}",
            ) from err
        if isinstance(target, type):
            if issubclass(target, nn.Module):
                return target
        elif callable(target):
            return target
        raise PluginError(
            f"{self.spec.target} (from plugin {self.plugin.name}) is not an nn.Module "
            "subclass (ZooModel recommended) or a function returning one"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.display_name,
            "qualified_name": self.qualified_name,
            "plugin": self.plugin.name,
            "version": self.plugin.version,
            "summary": self.spec.summary,
            "tags": list(self.spec.tags),
            "target": self.spec.target,
            "supports": list(self.spec.supports),
        }


@dataclass
class Registry:
    """Every discovered plugin and model. Build it with :func:`get_registry`.

    ``manager`` holds the hook modules imported in this run: plugins listed
    from the plugin cache (:mod:`zoo_core.plugins.cache`) are not imported, so
    ask :meth:`hook_results` for what their other hooks return.
    ``hook_outcomes`` maps :func:`hook_name` to ``{hook: results or exception}``.
    """

    plugins: list[PluginInfo] = field(default_factory=list)
    entries: list[ModelEntry] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None
    hook_outcomes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # Why the plugin cache was ignored in this discovery (see plugins.cache), or None.
    cache_problem: str | None = None

    def hook_results(self, plugin: PluginInfo, hook: str) -> list[Any]:
        """What each of ``plugin``'s implementations of ``hook`` returned, one item each.

        A plugin listed from the plugin cache answers from the cache; any other
        has its hook called (once per registry). Raises what the hook raised.

        >>> reg = get_registry()                                        # doctest: +SKIP
        >>> reg.hook_results(reg.plugin("zoo-cnn"), "zoo_register_weights")  # doctest: +SKIP
        [[WeightsSpec(model='simple_cnn', tag='digits', ...)]]
        """
        known = self.hook_outcomes.setdefault(hook_name(plugin), {})
        if hook not in known:
            impls = hook_impls(self.manager, hook, plugin) if self.manager else []
            timeout = env_seconds(TIMEOUT_ENV, DEFAULT_PLUGIN_TIMEOUT, maximum=MAX_PLUGIN_TIMEOUT)
            known[hook] = call_hook(hook, impls, timeout, TIMEOUT_ENV) if impls else []
        if isinstance(known[hook], Exception):
            raise known[hook]
        return known[hook]

    @property
    def unusable(self) -> list[PluginInfo]:
        """Plugins that were found but give no models: broken or incompatible."""
        return [p for p in self.plugins if p.status in ("broken", "incompatible")]

    def models(
        self, pattern: str | None = None, *, supports: Sequence[str] = ()
    ) -> list[ModelEntry]:
        """Entries whose bare or qualified name matches the fnmatch ``pattern``, sorted.

        ``supports`` keeps the entries whose spec declares every capability named.
        """
        found = [
            e
            for e in self.entries
            if (
                pattern is None
                or fnmatch.fnmatchcase(e.name, pattern)
                or fnmatch.fnmatchcase(e.qualified_name, pattern)
            )
            and all(c in e.spec.supports for c in supports)
        ]
        return sorted(found, key=lambda e: (e.name, e.qualified_name))

    def conflicts(self) -> dict[str, list[ModelEntry]]:
        """Bare names registered by more than one plugin."""
        by_name: dict[str, list[ModelEntry]] = {}
        for e in self.entries:
            by_name.setdefault(e.name, []).append(e)
        return {n: es for n, es in sorted(by_name.items()) if len(es) > 1}

    def plugin(self, name: str) -> PluginInfo | None:
        wanted = canonical_name(name)
        for p in self.plugins:
            if wanted in {canonical_name(p.name), canonical_name(p.entry_point or p.name)}:
                return p
        return None

    def resolve(self, name: str) -> ModelEntry:
        """Find the one model a user-typed name means.

        Raises:
            ModelNotFoundError: nothing registers the name (close names are suggested).
            AmbiguousModelError: several plugins register the bare name.
            PluginError: the qualifier names a plugin that is broken or disabled.
        """
        qualifier, sep, bare = name.rpartition(":")
        if sep:
            plugin = self.plugin(qualifier)
            if plugin is not None and plugin.status != "ok":
                raise PluginError(
                    f"plugin {plugin.name} is {plugin.status}"
                    + (f": {plugin.error}" if plugin.error else ""),
                    hint="see 'zoo plugins'",
                )
            for e in self.entries:
                if e.name == bare and plugin is not None and e.plugin.name == plugin.name:
                    return e
            raise self._not_found(name)
        matches = [e for e in self.entries if e.name == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            options = ", ".join(e.qualified_name for e in matches)
            raise AmbiguousModelError(
                f"{name!r} is registered by {len(matches)} plugins: {options}",
                hint=f"use a qualified name, e.g. {matches[0].qualified_name}",
            )
        raise self._not_found(name)

    def _not_found(self, name: str) -> ModelNotFoundError:
        import difflib

        known = sorted({e.qualified_name if ":" in name else e.name for e in self.entries})
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
        elif known:
            hint = "'zoo list' shows the installed models"
        else:
            hint = "no models are installed; install a plugin, e.g. pip install zoo-cnn"
        disabled = [p.name for p in self.plugins if p.status != "ok"]
        if disabled:
            hint += f" (not loaded: {', '.join(disabled)}; see 'zoo plugins')"
        return ModelNotFoundError(f"no model named {name!r}", hint=hint)

    def entry_for_class(self, cls: type) -> ModelEntry:
        """The entry whose target is ``cls`` (how ``save_model`` knows what it saves).

        Raises:
            PluginError: no installed plugin registers this class.
        """
        target = f"{cls.__module__}:{cls.__qualname__}"
        for e in self.entries:
            if e.spec.target == target:
                return e
        raise PluginError(
            f"{target} is not registered by any installed zoo plugin",
            hint="a model must come from a plugin's ModelSpec to be saved; see 'zoo list'",
        )

    def resolve_saved(
        self, architecture: str, distribution: str | None, version: str | None
    ) -> ModelEntry:
        """Find the architecture that saved weights name, or say what to install.

        Raises:
            PluginNotInstalledError: the recorded plugin distribution is missing.
        """
        if distribution:
            plugin = self.plugin(distribution)
            if plugin is None or plugin.status != "ok":
                # Both fields come from the file: only a valid name and version are echoed
                # into a command, and nothing of them is shown unescaped.
                requirement = install_requirement(distribution, version)
                state = "is not installed" if plugin is None else f"is {plugin.status}"
                if requirement is not None:
                    hint = f"install it: pip install '{requirement}'"
                else:
                    hint = (
                        "the plugin name recorded with the weights is not a valid distribution "
                        "name; find out which plugin provides this architecture"
                    )
                if plugin is not None and plugin.status == "incompatible":
                    hint = f"{plugin.name} {plugin.error}"
                elif plugin is not None and plugin.status == "disabled":
                    hint = f"remove {plugin.name} from ZOO_DISABLE_PLUGINS to load it"
                elif plugin is not None:
                    hint = f"{plugin.name} failed to load ({plugin.error}); see 'zoo plugins'"
                shown_version = clean_text(version, 40) if version else "unknown"
                raise PluginNotInstalledError(
                    f"these weights are a '{clean_text(architecture, 80)}' model from the plugin "
                    f"{clean_text(distribution, 80)} (version {shown_version}), which {state}",
                    distribution=distribution,
                    hint=hint,
                )
            return self.resolve(f"{plugin.name}:{architecture}")
        return self.resolve(architecture)


def _env_list(name: str) -> list[str]:
    return [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]


def _discover() -> Registry:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(contract)
    disabled = {canonical_name(n) for n in _env_list("ZOO_DISABLE_PLUGINS")}
    plugins: list[PluginInfo] = []
    collected: list[tuple[PluginInfo, list[ModelSpec]]] = []

    # An unchanged environment lists from the cache: no metadata scan, no hook module imported.
    cache = PluginCache.open(_CACHE_SALT, code=_CACHE_CODE)
    candidates: list[tuple[PluginInfo, Any]] = []
    for dist_name, version, ep_name, value in entry_points(ENTRY_POINT_GROUP, cache):
        info = PluginInfo(
            name=canonical_name(dist_name) if dist_name else ep_name,
            module=value,
            distribution=dist_name,
            version=version,
            entry_point=ep_name,
        )
        load = partial(load_entry_point, ep_name, value, ENTRY_POINT_GROUP)
        candidates.append((info, load))
    for module_name in _env_list("ZOO_PLUGINS"):
        info = PluginInfo(name=module_name, module=module_name, source="ZOO_PLUGINS")
        candidates.append((info, lambda m=module_name: importlib.import_module(m)))

    outcomes: dict[str, dict[str, Any]] = {}
    # pluggy refuses a module registered twice: such plugins always take the uncached path.
    repeated = {m for m, n in Counter(info.module for info, _ in candidates).items() if n > 1}
    timeout = env_seconds(TIMEOUT_ENV, DEFAULT_PLUGIN_TIMEOUT, maximum=MAX_PLUGIN_TIMEOUT)
    enabled: list[tuple[PluginInfo, Any]] = []
    for info, load in candidates:
        keys = {canonical_name(info.name), canonical_name(info.entry_point or info.name)}
        if keys & disabled:
            plugins.append(replace(info, status="disabled", error="listed in ZOO_DISABLE_PLUGINS"))
        else:
            enabled.append((info, load))
    # What the cache remembers needs no plugin code (and no guard); the rest runs guarded.
    outcomes_by_plugin: list[tuple[str, Any, float] | None] = [
        None if cache is None or info.module in repeated else remembered(cache, info)
        for info, _ in enabled
    ]
    calls = [
        lambda info=info, load=load: _cached_call(
            None if info.module in repeated else cache, manager, info, load
        )
        for (info, load), known in zip(enabled, outcomes_by_plugin, strict=True)
        if known is None
    ]
    guarded = iter(run_guarded(calls, timeout))
    results = [known or next(guarded) for known in outcomes_by_plugin]
    for (info, _), (outcome, value, seconds) in zip(enabled, results, strict=True):
        info = replace(info, seconds=seconds)
        if outcome == "timeout":
            _forget(manager, info)
            error = f"its import or hook did not finish within {TIMEOUT_ENV}={timeout:g} s"
            plugins.append(replace(info, status="broken", error=error))
            continue
        if isinstance(value, _IncompatiblePlugin):
            plugins.append(
                replace(
                    info, status="incompatible", error=str(value), api_version=value.api_version
                )
            )
            continue
        if outcome == "raised":  # third-party code: any failure, SystemExit too, marks it broken
            _forget(manager, info)
            plugins.append(replace(info, status="broken", error=describe(value)))
            continue
        specs, api_version, outcomes[hook_name(info)] = value
        info = replace(info, models=tuple(s.name for s in specs), api_version=api_version)
        plugins.append(info)
        collected.append((info, specs))

    if cache is not None:
        cache.save()
    names = Counter(s.name for _, specs in collected for s in specs)
    entries = [
        ModelEntry(spec=s, plugin=info, conflicted=names[s.name] > 1)
        for info, specs in collected
        for s in specs
    ]
    problem = None
    if cache is not None and cache.problem is not None:
        problem = f"ignoring the plugin cache {cache.path}: {cache.problem}"
    return Registry(
        plugins=plugins,
        entries=entries,
        manager=manager,
        hook_outcomes=outcomes,
        cache_problem=problem,
    )


# What, besides the plugins, shapes the cached results: this zoo-core, the code
# that calls the hooks and the contract that checks what they return.
_CACHE_SALT = f"zoo-core {__version__}, plugin API {PLUGIN_API_VERSION}"
_CACHE_CODE = (__file__, contract.__file__ or "")


# The hooks whose results the plugin cache keeps, and the class of their items.
def _cached_call(
    cache: PluginCache | None, manager: pluggy.PluginManager, info: PluginInfo, load: Any
) -> tuple[list[ModelSpec], int | None, dict[str, Any]]:
    """:func:`_call_plugin` after a cache miss (see :func:`.memo.remembered`), storing its results.

    Also returns the outcome of the plugin's other cached hooks (see
    :meth:`Registry.hook_results`), called now so that the cache can keep them.
    A plugin is stored only when every hook worked.
    """
    if cache is None:
        specs, api_version = _call_plugin(manager, info, load)
        return specs, api_version, {}
    identity = plugin_identity(info)
    specs, api_version = _call_plugin(manager, info, load)
    outcomes: dict[str, Any] = {}
    stored = {"zoo_register_models": encode_results([specs], ModelSpec)}
    for hook, cls in CACHED_HOOKS.items():
        if hook in stored:
            continue
        try:
            outcomes[hook] = [impl.function() for impl in hook_impls(manager, hook, info)]
        except Exception as err:  # third-party code: reported where the results are used
            outcomes[hook] = err
            continue
        stored[hook] = encode_results(outcomes[hook], cls)
    if all(v is not None for v in stored.values()) and len(stored) == len(CACHED_HOOKS):
        cache.store(identity, info.module, {"api_version": api_version, "hooks": stored})
    return specs, api_version, outcomes


def _forget(manager: pluggy.PluginManager, info: PluginInfo) -> None:
    """Unregister a plugin that failed after registering, so its hook is never called again."""
    name = f"{info.name}/{info.entry_point or info.module}"
    plugin = manager.get_plugin(name)
    if plugin is not None:
        manager.unregister(plugin, name=name)


def _check_api(module: Any) -> int | None:
    """The plugin API a hook module declares; raises _IncompatiblePlugin if it is not ours."""
    declared = getattr(module, PLUGIN_API_ATTRIBUTE, None)
    problem = plugin_api_problem(declared, core_version=__version__)
    if problem is None:
        return declared
    if isinstance(declared, bool) or not isinstance(declared, int):
        raise PluginError(problem)  # a malformed declaration is a bug in the plugin
    if declared > PLUGIN_API_VERSION:
        problem += "; upgrade zoo-core (pip install -U zoo-core)"
    else:
        problem += "; upgrade the plugin, or install an older zoo-core"
    raise _IncompatiblePlugin(problem, declared)


def _call_plugin(
    manager: pluggy.PluginManager, info: PluginInfo, load: Any
) -> tuple[list[ModelSpec], int | None]:
    module = load()
    # Checked before the hook runs: a plugin written for another API may fail in
    # its hook in ways that would hide the real reason.
    api_version = _check_api(module)
    register_name = hook_name(info)
    manager.register(module, name=register_name)
    impls = [
        impl
        for impl in manager.hook.zoo_register_models.get_hookimpls()
        if impl.plugin_name == register_name
    ]
    if not impls and not hook_impls(manager, "zoo_register_weights", info):
        # A module that only publishes weights for others' models is a plugin too.
        raise PluginError(
            f"{info.module} defines no zoo_register_models (or zoo_register_weights) hook"
        )
    specs: list[ModelSpec] = []
    for impl in impls:
        result = impl.function()
        if not isinstance(result, (list, tuple)) or not all(
            isinstance(s, ModelSpec) for s in result
        ):
            raise PluginError(
                f"zoo_register_models returned {type(result).__name__}, not a list of ModelSpec"
            )
        specs.extend(result)
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise PluginError(f"registers {s.name!r} twice")
        seen.add(s.name)
    return specs, api_version


def hook_name(info: PluginInfo) -> str:
    """The name a plugin's hook module is registered under in the pluggy manager.

    A distribution may expose several entry points; pluggy needs unique names.
    """
    return f"{info.name}/{info.entry_point or info.module}"


def hook_impls(manager: pluggy.PluginManager, hook: str, info: PluginInfo) -> list[Any]:
    """The implementations of ``hook`` that ``info``'s hook module provides."""
    caller = getattr(manager.hook, hook, None)
    if caller is None:
        return []
    return [impl for impl in caller.get_hookimpls() if impl.plugin_name == hook_name(info)]


_REGISTRY: Registry | None = None
_SAID: set[str] = set()


def get_registry(*, refresh: bool = False) -> Registry:
    """The process-wide registry, discovered on first use.

    ``refresh=True`` discovers again (after installing a plugin or changing
    ``ZOO_PLUGINS`` / ``ZOO_DISABLE_PLUGINS`` in a running process).
    """
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = _discover()
        for message in plugin_warnings(_REGISTRY):
            warnings.warn(message, ZooPluginWarning, stacklevel=2)
        problem = _REGISTRY.cache_problem
        if problem is not None and problem not in _SAID:
            _SAID.add(problem)  # once per process: every discovery would find it again
            warnings.warn(
                f"{problem}; zoo works without it (make the folder and the file yours alone, "
                "e.g. chmod go-w, or remove them)",
                ZooPluginWarning,
                stacklevel=2,
            )
        known = {canonical_name(n) for p in _REGISTRY.plugins for n in (p.name, p.entry_point) if n}
        for name in sorted({canonical_name(n) for n in _env_list("ZOO_DISABLE_PLUGINS")} - known):
            warnings.warn(
                f"ZOO_DISABLE_PLUGINS names {name!r}, which is not an installed plugin; "
                "see 'zoo plugins' for the names",
                ZooPluginWarning,
                stacklevel=2,
            )
    return _REGISTRY


def plugin_warnings(registry: Registry) -> list[str]:
    """One line per broken, incompatible or slow plugin: what ``zoo`` prints as warnings."""
    lines = [
        f"zoo plugin {p.name} is {p.status} ({p.error}); see 'zoo plugins'"
        for p in registry.unusable
    ]
    lines += [
        f"zoo plugin {p.name} took {p.seconds:.1f} s to import and register its models "
        f"(over {SLOW_PLUGIN_SECONDS:g} s); every zoo command waits for it"
        for p in registry.plugins
        if p.slow and p.status == "ok"
    ]
    return lines


def reset_registry() -> None:
    """Forget the discovered plugins; the next use discovers them again."""
    global _REGISTRY
    _REGISTRY = None


def list_models(pattern: str | None = None, *, supports: Sequence[str] = ()) -> list[str]:
    """Names of the installed models, sorted, optionally filtered by an fnmatch pattern.

    A name registered by two plugins is listed once per plugin, qualified as
    ``DIST:NAME``; every other name is listed bare. ``supports`` keeps the
    models that declare every capability named (see :data:`~zoo_core.ModelSpec`).

    >>> import zoo_core
    >>> zoo_core.list_models("simple_*")                  # doctest: +SKIP
    ['simple_cnn', 'simple_rnn']
    >>> zoo_core.list_models(supports=["export", "compile"])   # doctest: +SKIP
    ['linear_regression', 'simple_cnn', 'tiny_transformer']
    """
    wanted = check_capabilities(list(supports), "list_models")
    return [e.display_name for e in get_registry().models(pattern, supports=wanted)]
