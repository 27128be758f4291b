"""Metadata that travels with the weights: what a loaded model remembers, what its save writes.

A model loaded from weights with a ``weights`` section (a variant, a saved
directory, the Hub) carries that section as ``model.weights_info``, and zoo
remembers which tensors it was loaded with (:func:`remember`). When the model
is saved or pushed, :func:`section_to_save` decides what still applies:

- weights saved as they were loaded keep the whole section: labels,
  preprocessing, license, dataset, metrics, training;
- weights that changed since (a head re-initialised for a new class count, or
  any tensor trained, replaced or moved) keep what describes the inputs and the
  origin (preprocessing, license, dataset, training, labels unless the head was
  replaced) and drop the metrics, which were measured on other weights; they
  gain ``base``, the variant they came from and its pinned sha256;
- ``save_model(model, dir, weights={...})`` merges the given keys over that
  (a key given as ``None`` removes it): new labels, new metrics, a new tag.

"Changed" is read from torch's version counters, which every in-place update
bumps (``optimizer.step()``, ``copy_``, ``load_state_dict``), and from the
tensors' identities and addresses (a replaced or moved tensor): nothing is
hashed and nothing is read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from zoo_core.pretrained.metadata import check_weights_section

__all__ = ["ORIGIN_ATTRIBUTE", "WeightsOrigin", "remember", "section_to_save", "weights_changed"]

#: The plain attribute (not a submodule, not in ``state_dict``) holding a model's origin.
ORIGIN_ATTRIBUTE = "zoo_weights_origin"
# Facts about one load that are no part of the saved section.
_RUNTIME_KEYS = ("reinitialised",)


@dataclass(frozen=True)
class WeightsOrigin:
    """The weights a model was loaded with: where from, and each tensor as it was then."""

    base: dict[str, str] | None
    fingerprint: dict[str, tuple[int, int, int]]
    derived: bool = False


def _fingerprint(model: nn.Module) -> dict[str, tuple[int, int, int]]:
    prints = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        try:
            address = tensor.data_ptr()
        except (RuntimeError, TypeError):  # a sharded DTensor has no single address
            address = 0
        try:
            version = tensor._version
        except RuntimeError:  # an inference tensor counts no versions (nor can it change)
            version = -1
        prints[key] = (id(tensor), version, address)
    return prints


def remember(
    model: nn.Module,
    section: dict[str, Any] | None,
    *,
    base: dict[str, str] | None = None,
    derived: bool = False,
) -> None:
    """Attach a loaded model's ``weights`` section and how its tensors were at load time.

    ``base`` names where the weights came from (written into a save once they
    change); ``derived`` says they already differ (a head was re-initialised).
    """
    model.weights_info = section
    model.__dict__[ORIGIN_ATTRIBUTE] = WeightsOrigin(base, _fingerprint(model), derived)


def _origin(model: nn.Module) -> WeightsOrigin | None:
    origin = model.__dict__.get(ORIGIN_ATTRIBUTE)
    return origin if isinstance(origin, WeightsOrigin) else None


def weights_changed(model: nn.Module) -> bool:
    """Whether any tensor of a loaded model was updated, replaced or moved since it was loaded.

    A model zoo did not load (a fresh one) has no loaded weights to compare: False.
    """
    origin = _origin(model)
    if origin is None:
        return False
    return origin.derived or _fingerprint(model) != origin.fingerprint


def section_to_save(model: nn.Module, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``weights`` section a save of ``model`` writes, checked; None for none.

    ``given`` (``save_model(weights=...)``) is merged over what the model
    carries; a key given as ``None`` is removed.

    Raises:
        WeightsError: the result is not a valid section (no tag, a bad value).
    """
    carried = getattr(model, "weights_info", None)
    section = {k: v for k, v in (carried or {}).items() if k not in _RUNTIME_KEYS}
    origin = _origin(model)
    if carried and origin is not None and weights_changed(model):
        section.pop("metrics", None)  # measured on the weights as they were
        if origin.base is not None:
            section.setdefault("base", dict(origin.base))
    for key, value in (given or {}).items():
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    if not section and given is None:
        return None
    where = "save_model(weights=...)" if given is not None else "the model's weights_info"
    return check_weights_section(section, where)
