"""A weights variant's record, typed: what :func:`zoo_core.get_pretrained` returns.

Everything the catalogue knows about a variant (its spec, and the ``weights``
section of its pinned ``config.json``) as one frozen object, with the
preprocessing ready to use: :meth:`PretrainedInfo.transforms`. Reading it
needs no torch; only ``transforms()`` imports it.

>>> info = zoo_core.get_pretrained("simple_cnn.digits")                 # doctest: +SKIP
>>> info.labels[:3], info.metrics[0], info.license                      # doctest: +SKIP
(('0', '1', '2'), Metric(name='accuracy', value=0.9867, split='test'), 'CC-BY-4.0')
>>> batch = info.transforms()(raw_digits)                                # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from zoo_core.pretrained.metadata import headline_metric

if TYPE_CHECKING:
    from zoo_core.pretrained.transforms import Transforms

__all__ = ["Metric", "PretrainedInfo"]


@dataclass(frozen=True)
class Metric:
    """One recorded measurement of the weights: ``accuracy 0.9867`` on the ``test`` split."""

    name: str
    value: float
    split: str | None = None


@dataclass(frozen=True)
class PretrainedInfo:
    """A weights variant as the catalogue describes it.

    ``name`` is the shortest ``NAME.TAG`` that resolves to it (qualified as
    ``PUBLISHER:NAME.TAG`` in ``qualified_name`` when two publishers offer it),
    ``model`` the architecture, ``default`` whether ``pretrained=True`` picks
    it. ``sha256`` is the pin of its ``config.json``; ``status`` is ``"ok"``,
    or what is wrong with the files. ``parameters`` counts tensor elements,
    ``tensor_bytes`` their size in memory as stored, ``file_bytes`` the size
    of the files (headers included: what a download costs). The rest is the
    variant's ``weights`` section (see :mod:`zoo_core.pretrained.metadata`):
    ``labels`` map class index to label, ``metrics`` come first-is-headline,
    ``preprocessing`` is what :meth:`transforms` applies; ``config`` holds the
    config fields the weights were saved with.
    """

    name: str
    qualified_name: str
    model: str
    tag: str
    publisher: str
    default: bool
    source: str
    sha256: str
    summary: str = ""
    status: str = "ok"
    task: str | None = None
    labels: tuple[str, ...] | None = None
    metrics: tuple[Metric, ...] = ()
    parameters: int | None = None
    tensor_bytes: int | None = None
    file_bytes: int | None = None
    license: str | None = None
    dataset: dict[str, str] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    head: tuple[str, ...] = ()
    base: dict[str, str] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PretrainedInfo:
        """From :func:`zoo_core.sources.variant.describe_variant`'s dict."""
        weights = row.get("weights") or {}
        labels = weights.get("labels")
        return cls(
            name=row["name"],
            qualified_name=row["qualified_name"],
            model=row["model"],
            tag=row["tag"],
            publisher=row["publisher"],
            default=row["default"],
            source=row["source"],
            sha256=row["sha256"],
            summary=row.get("summary") or "",
            status=row.get("status", "ok"),
            task=weights.get("task"),
            labels=tuple(labels) if labels is not None else None,
            metrics=tuple(
                Metric(m["name"], m["value"], m.get("split")) for m in weights.get("metrics") or []
            ),
            parameters=row.get("parameters"),
            tensor_bytes=row.get("tensor_bytes"),
            file_bytes=row.get("bytes"),
            license=weights.get("license"),
            dataset=dict(weights.get("dataset") or {}),
            preprocessing=dict(weights.get("preprocessing") or {}),
            training=dict(weights.get("training") or {}),
            head=tuple(weights.get("head") or ()),
            base=weights.get("base"),
            config=dict(row.get("config") or {}),
        )

    @property
    def headline(self) -> str | None:
        """The first metric, ``'accuracy 0.9867 (test)'``, as ``zoo list --pretrained`` shows it."""
        return headline_metric({"metrics": [asdict(m) for m in self.metrics]})

    def transforms(self) -> Transforms:
        """The recorded preprocessing as a callable for raw samples or batches (picklable).

        The very object :func:`zoo_core.predict` applies: hand it to a data set
        or a ``DataLoader``.

        >>> dataset = MyDigits(transform=info.transforms())             # doctest: +SKIP
        """
        from zoo_core.pretrained.transforms import Transforms

        return Transforms(self.preprocessing)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (what ``zoo info NAME.TAG --json`` would print)."""
        return asdict(self)
