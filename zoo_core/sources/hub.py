"""An ``hf://`` source: the Hub snapshot fetched into the cache, opened as a saved model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zoo_core.hub.download import HF_PREFIX, read_hub_record, resolve_hf_source
from zoo_core.storage.record import CONFIG_NAME
from zoo_core.storage.weights import SavedModel, read_saved

__all__ = ["HubModel", "open_hub_saved"]


@dataclass
class HubModel(SavedModel):
    """A saved model (:class:`~zoo_core.storage.weights.SavedModel`) from the Hub."""

    repo_id: str = ""
    revision: str | None = None
    commit: str = ""

    @property
    def uri(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}@{self.commit}"

    @property
    def source(self) -> str:
        return self.uri

    def provenance(self) -> dict[str, Any]:
        """What ``zoo load --json`` reports about where the model came from."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def open_hub_saved(text: str, *, weights: bool = True) -> HubModel:
    """The saved model behind an ``hf://`` source (what ``load_model``/``zoo info`` read).

    With ``weights=False`` only ``config.json`` is fetched and the result maps no tensors.
    """
    snap = resolve_hf_source(text, weights=weights)
    extra = {"repo_id": snap.repo_id, "revision": snap.revision, "commit": snap.commit}
    if weights:
        saved = read_saved(snap.path)
        base = {f.name: getattr(saved, f.name) for f in dataclasses.fields(SavedModel)}
        return HubModel(**{**base, "kind": "hub"}, **extra)
    record = read_hub_record(snap.path / CONFIG_NAME, snap.uri)
    return HubModel(path=snap.path, kind="hub", record=record, **extra)
