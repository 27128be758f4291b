"""An ``hf://`` source: the Hub snapshot fetched into the cache, opened as a saved model."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo_core.hub.card_data import CARD_NAME, CardError, card_summary, parse_card
from zoo_core.hub.download import (
    HF_PREFIX,
    MAX_CARD_BYTES,
    HubWarning,
    read_hub_record,
    resolve_hf_source,
)
from zoo_core.storage.record import CONFIG_NAME
from zoo_core.storage.weights import SavedModel, read_saved

__all__ = ["HubModel", "open_hub_saved", "read_card"]


@dataclass
class HubModel(SavedModel):
    """A saved model (:class:`~zoo_core.storage.weights.SavedModel`) from the Hub."""

    repo_id: str = ""
    revision: str | None = None
    commit: str = ""
    # What the model card's metadata says (card_summary), when it was asked for and readable.
    card: dict[str, Any] | None = None

    @property
    def uri(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}@{self.commit}"

    @property
    def source(self) -> str:
        return self.uri

    def provenance(self) -> dict[str, Any]:
        """What ``zoo load --json`` reports about where the model came from."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def open_hub_saved(text: str, *, weights: bool = True, card: bool = False) -> HubModel:
    """The saved model behind an ``hf://`` source (what ``load_model``/``zoo info`` read).

    With ``weights=False`` only ``config.json`` is fetched and the result maps
    no tensors; ``card=True`` adds the model card's metadata (``README.md``, at
    most :data:`~zoo_core.hub.download.MAX_CARD_BYTES`) as :attr:`HubModel.card`.
    """
    snap = resolve_hf_source(text, weights=weights, card=card)
    extra: dict[str, Any] = {
        "repo_id": snap.repo_id,
        "revision": snap.revision,
        "commit": snap.commit,
    }
    if card and CARD_NAME in snap.files:
        extra["card"] = read_card(snap.path / CARD_NAME, snap.uri)
    if weights:
        saved = read_saved(snap.path)
        base = {f.name: getattr(saved, f.name) for f in dataclasses.fields(SavedModel)}
        return HubModel(**{**base, "kind": "hub"}, **extra)
    record = read_hub_record(snap.path / CONFIG_NAME, snap.uri)
    return HubModel(path=snap.path, kind="hub", record=record, **extra)


def read_card(path: Path, source: str) -> dict[str, Any] | None:
    """:func:`~zoo_core.hub.card_data.card_summary` of a fetched card; None (and a warning) if
    its metadata cannot be read: the model does not need it."""
    with open(path, "rb") as f:
        data = f.read(MAX_CARD_BYTES + 1)
    try:
        if len(data) > MAX_CARD_BYTES:
            raise CardError(f"it is over {MAX_CARD_BYTES} bytes")
        return card_summary(parse_card(data.decode("utf-8", errors="replace")))
    except CardError as err:
        warnings.warn(f"{source}: not showing its {CARD_NAME} metadata: {err}", HubWarning, 2)
        return None
