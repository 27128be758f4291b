"""Finding zoo models on the Hub: the listing ``zoo search`` and :func:`zoo_core.search` show.

Every card ``zoo push`` writes carries ``library_name: zoo`` and tags naming
the architecture and its plugin (:mod:`zoo_core.hub.card_data`); the Hub
indexes them, so one call to its model listing (``HfApi.list_models``, through
:mod:`zoo_core.hub.transport`) finds zoo's models, optionally for one
architecture, one author, or with a word in the repository id. Each result
says whether the plugin that provides its architecture is installed here, and
how to install it when it is not.

The listing is untrusted: it is capped in bytes, pages and entries; an entry
whose id is not a repository id or whose fields have the wrong types makes
the whole answer an error; tags that are not well-formed names are ignored;
text is escaped before anyone sees it. Nothing found is downloaded.

>>> import zoo_core
>>> for found in zoo_core.search("cnn", arch="simple_cnn", limit=5):    # doctest: +SKIP
...     print(found.source, found.plugin, found.installed, found.downloads)
hf://me/cnn-demo zoo-cnn True 120
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from zoo_core.errors import HubError, UsageError
from zoo_core.hub.card_data import ARCH_TAG, PLUGIN_TAG, read_tags, valid_architecture
from zoo_core.hub.download import HF_PREFIX, parse_hf_source
from zoo_core.hub.transport import LIBRARY_NAME, endpoint, hub_errors, list_models, offline
from zoo_core.plugins.registry import Registry, canonical_name, get_registry
from zoo_core.untrusted import clean_text, install_requirement, valid_distribution

__all__ = ["DEFAULT_LIMIT", "MAX_RESULTS", "SORTS", "SearchResult", "search"]

# The user's word for the order -> huggingface_hub's (the Hub sorts largest or newest first).
SORTS = {"downloads": "downloads", "likes": "likes", "updated": "last_modified"}
DEFAULT_LIMIT = 20
MAX_RESULTS = 1000
# The fields each listed model needs, and no more (the Hub sends only what is asked).
_EXPAND = ["downloads", "likes", "lastModified", "tags", "library_name"]
_MAX_TAGS = 1000
_MAX_TAG_CHARS = 200
_MAX_QUERY = 200
_MAX_COUNT = 2**63 - 1
_WHERE = "the model search"


@dataclass(frozen=True)
class SearchResult:
    """One zoo model on the Hub, and whether it loads here.

    ``plugin_status`` is ``"installed"``, ``"not-installed"``, ``"disabled"``,
    ``"broken"``, ``"incompatible"`` (the plugin is there but does not work),
    ``"missing-model"`` (the installed plugin does not register this
    architecture: another version may) or ``"unknown"`` (the card does not say
    which architecture or plugin). ``install`` is the ``pip install`` command
    for a missing plugin whose name is a valid distribution name, else None.
    ``downloads``, ``likes`` and ``last_modified`` are None where the Hub did
    not say.
    """

    repo_id: str
    architecture: str | None
    plugin: str | None
    installed: bool
    plugin_status: str
    install: str | None
    downloads: int | None
    likes: int | None
    last_modified: datetime.datetime | None
    license: str | None
    tags: tuple[str, ...]

    @property
    def source(self) -> str:
        """What to load: ``hf://owner/repo``."""
        return f"{HF_PREFIX}{self.repo_id}"

    @property
    def qualified_name(self) -> str | None:
        """``DIST:NAME`` when the card names both, else None."""
        return f"{self.plugin}:{self.architecture}" if self.plugin and self.architecture else None

    def as_dict(self) -> dict[str, Any]:
        """The ``zoo search --json`` object (``last_modified`` in ISO 8601)."""
        return {
            "repo_id": self.repo_id,
            "source": self.source,
            "architecture": self.architecture,
            "plugin": self.plugin,
            "qualified_name": self.qualified_name,
            "installed": self.installed,
            "plugin_status": self.plugin_status,
            "install": self.install,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified.isoformat() if self.last_modified else None,
            "license": self.license,
            "tags": list(self.tags),
        }


def _usage(what: str, hint: str) -> UsageError:
    return UsageError(what, hint=hint)


def _check_arguments(
    query: str | None, arch: str | None, author: str | None, sort: str, limit: int
) -> tuple[str | None, str | None]:
    """The architecture and plugin ``arch`` names; every argument checked before any request."""
    if query is not None and (
        not isinstance(query, str) or len(query) > _MAX_QUERY or clean_text(query, None) != query
    ):
        raise _usage(
            f"{clean_text(query, 60)!r} is not a search word",
            f"give up to {_MAX_QUERY} printable characters found in the repository id",
        )
    if sort not in SORTS:
        raise _usage(f"cannot sort by {clean_text(sort, 40)!r}", f"sort by {', '.join(SORTS)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
        raise _usage(f"limit {clean_text(limit, 40)} is out of range", f"give 1 to {MAX_RESULTS}")
    if author is not None:
        try:
            parse_hf_source(f"{author}/x")
            valid = "/" not in author and "@" not in author
        except UsageError:
            valid = False
        if not valid:
            raise _usage(
                f"{clean_text(author, 60)!r} is not a Hub user or organisation name",
                "letters, digits, '-', '_' and '.', as in hf://OWNER/REPO",
            )
    if arch is None:
        return None, None
    plugin, _, name = arch.rpartition(":") if isinstance(arch, str) else ("", "", "")
    if not valid_architecture(name) or (plugin and not valid_distribution(plugin)):
        raise _usage(
            f"{clean_text(arch, 60)!r} is not a model name",
            "give NAME or DIST:NAME, e.g. simple_cnn or zoo-cnn:simple_cnn",
        )
    return name, canonical_name(plugin) if plugin else None


def _malformed(what: str) -> HubError:
    return HubError(
        f"the Hub at {endpoint()} sent a malformed model listing: {what}",
        hint="check HF_ENDPOINT; if it is right, the server is misbehaving",
    )


def _count(value: Any, field: str, repo_id: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise _malformed(f"{repo_id} has {field} {clean_text(value, 40)}")
    return value


def _repo_id(value: Any) -> str:
    bad = not isinstance(value, str) or "@" in value or value.startswith(HF_PREFIX)
    if not bad:
        try:
            parse_hf_source(value)
        except UsageError:
            bad = True
    if bad:
        raise _malformed(f"a model's id is {clean_text(value, 120)!r}")
    return value


def _tags(value: Any, repo_id: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_TAGS:
        raise _malformed(f"the tags of {repo_id} are not a list of at most {_MAX_TAGS}")
    if not all(isinstance(t, str) for t in value):
        raise _malformed(f"a tag of {repo_id} is not text")
    # A tag too long to be one of zoo's is nobody's business here.
    return [t for t in value if len(t) <= _MAX_TAG_CHARS]


def _plugin_state(
    registry: Registry, arch: str | None, plugin: str | None
) -> tuple[str, str | None]:
    """The ``plugin_status`` of a found model, and the command that installs its plugin."""
    if arch is None:
        return "unknown", None
    if plugin is None:
        found = any(e.name == arch for e in registry.entries)
        return ("installed" if found else "unknown"), None
    info = registry.plugin(plugin)
    requirement = install_requirement(plugin)
    if info is None:
        return "not-installed", f"pip install {requirement}" if requirement else None
    if info.status != "ok":
        return info.status, None
    if any(e.name == arch and e.plugin.name == info.name for e in registry.entries):
        return "installed", None
    return "missing-model", f"pip install --upgrade {requirement}" if requirement else None


def _result(info: Any, registry: Registry) -> SearchResult | None:
    """A checked :class:`SearchResult` for one listed model; None if it is not zoo's."""
    repo_id = _repo_id(getattr(info, "id", None))
    tags = _tags(getattr(info, "tags", None), repo_id)
    library = getattr(info, "library_name", None)
    if library is not None and not isinstance(library, str):
        raise _malformed(f"the library of {repo_id} is {clean_text(library, 40)}")
    if LIBRARY_NAME not in tags and library != LIBRARY_NAME:
        return None
    modified = getattr(info, "last_modified", None)
    if modified is not None and not isinstance(modified, datetime.datetime):
        raise _malformed(f"{repo_id} was last modified at {clean_text(modified, 40)}")
    card = read_tags(tags)
    status, install = _plugin_state(registry, card.architecture, card.plugin)
    return SearchResult(
        repo_id=repo_id,
        architecture=card.architecture,
        plugin=card.plugin,
        installed=status == "installed",
        plugin_status=status,
        install=install,
        downloads=_count(getattr(info, "downloads", None), "downloads", repo_id),
        likes=_count(getattr(info, "likes", None), "likes", repo_id),
        last_modified=modified,
        license=card.license,
        tags=tuple(clean_text(t, _MAX_TAG_CHARS) for t in tags),
    )


def _sort_key(sort: str) -> Any:
    if sort == "updated":
        return lambda r: r.last_modified.timestamp() if r.last_modified else float("-inf")
    return lambda r: -1 if getattr(r, sort) is None else getattr(r, sort)


def search(
    query: str | None = None,
    *,
    arch: str | None = None,
    author: str | None = None,
    sort: str = "downloads",
    limit: int = DEFAULT_LIMIT,
    token: str | bool | None = None,
) -> list[SearchResult]:
    """zoo models on the Hub, most downloaded (``sort="likes"``, ``"updated"``) first.

    ``query`` is a part of the repository id (``"cnn"``), ``arch`` an
    architecture (``"simple_cnn"``, or ``"zoo-cnn:simple_cnn"`` for one
    plugin's), ``author`` the user or organisation owning the repositories;
    at most ``limit`` (1 to :data:`MAX_RESULTS`) results. The Hub is
    ``HF_ENDPOINT``; ``token`` (default: ``HF_TOKEN`` or the saved login) also
    finds the private models it can read.

    >>> [r.source for r in zoo_core.search(arch="simple_cnn", author="me")]  # doctest: +SKIP
    ['hf://me/cnn-demo', 'hf://me/cnn-digits']

    Raises:
        UsageError: an argument is malformed (before any request).
        HubError: offline (``HF_HUB_OFFLINE=1``), the Hub unreachable or
            failing, or its answer malformed or over zoo's limits.
    """
    name, plugin = _check_arguments(query, arch, author, sort, limit)
    if offline():
        raise HubError(
            "searching the Hub needs the network, and HF_HUB_OFFLINE=1 forbids it",
            hint="unset HF_HUB_OFFLINE to search; 'zoo list' shows the models installed here",
        )
    filters = [LIBRARY_NAME]
    if name is not None:
        filters.append(ARCH_TAG + name)
    if plugin is not None:
        filters.append(PLUGIN_TAG + plugin)
    with hub_errors(_WHERE, None):
        infos = list_models(
            filters=filters,
            search=query or None,
            author=author,
            sort=SORTS[sort],
            limit=limit,
            expand=_EXPAND,
            token=token,
        )
    registry = get_registry()
    results: dict[str, SearchResult] = {}
    for info in infos:
        found = _result(info, registry)
        # The Hub already filtered; checking again keeps a server that ignores a filter honest.
        if found is None or found.repo_id in results:
            continue
        if query and query.lower() not in found.repo_id.lower():
            continue
        if author and found.repo_id.partition("/")[0].lower() != author.lower():
            continue
        if name is not None and (
            found.architecture != name or (plugin is not None and found.plugin != plugin)
        ):
            continue
        results[found.repo_id] = found
    return sorted(results.values(), key=_sort_key(sort), reverse=True)
