"""Reading a saved model: the snapshot's record, its tensor map, structure checks, tensors.

Reading never unpickles anything: safetensors headers are JSON and the tensor
data is raw bytes. A directory is read as one snapshot (see
:mod:`zoo_core.storage.snapshot`); the record and its files are
:mod:`zoo_core.storage.record`'s, writing is :mod:`zoo_core.storage.writer`'s.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo_core.errors import WeightsError, ZooWarning
from zoo_core.progress import ProgressCallback
from zoo_core.storage import limits
from zoo_core.storage.aliases import same_tensor_groups
from zoo_core.storage.hashes import Problem, check_opened
from zoo_core.storage.record import (
    CONFIG_NAME,
    FILES_KEY,
    INDEX_NAME,
    META_PREFIX,
    WEIGHTS_NAME,
    check_record,
    is_zoo_file,
    metadata_to_record,
    parse_json,
    plain_name,
    read_member_bytes,
    read_member_json,
    recorded_weights,
)
from zoo_core.storage.safetensors_io import Header, read_header
from zoo_core.storage.snapshot import Handles, OpenedDirectory, Vanished, open_regular

__all__ = [
    "SavedModel",
    "UnrecordedFileWarning",
    "check_structure",
    "read_opened",
    "read_saved",
    "read_tensors",
    "reads_on_first_use",
    "structure_problems",
    "unrecorded_files",
]

# How often a read starts again because saves kept replacing the directory under it.
_READ_ATTEMPTS = 50


@dataclass
class SavedModel:
    """What a saved source holds, read from its JSON parts only (no tensor data yet)."""

    path: Path
    kind: str  # "directory" or "file"
    record: dict[str, Any]
    key_to_file: dict[str, Path] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    headers: dict[Path, Header] = field(default_factory=dict)
    # The open files everything was read from (one snapshot of the directory); see snapshot.
    handles: Handles | None = field(default=None, repr=False, compare=False)
    # The directory as opened (None for a lone file): hashes are checked through it.
    opened: OpenedDirectory | None = field(default=None, repr=False, compare=False)
    # The bytes config.json was parsed from, so a pin is checked on exactly what was used.
    config_bytes: bytes | None = field(default=None, repr=False, compare=False)
    # Tensors read_tensors copied because the file placed them at an address that is not a
    # multiple of their element size (other tools' files; zoo's writer aligns every tensor).
    realigned: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def architecture(self) -> str:
        return self.record["architecture"]

    @property
    def source(self) -> str:
        """How commands name where this model came from."""
        return str(self.path)

    def provenance(self) -> dict[str, Any]:
        """Extra facts about the origin for ``zoo load --json`` (the Hub adds its commit)."""
        return {}

    @property
    def files(self) -> list[Path]:
        return sorted(set(self.key_to_file.values()))

    def fd(self, file: Path) -> int | None:
        """The open descriptor ``file`` was read from, if this snapshot holds one."""
        return None if self.handles is None else self.handles.get(file)

    def readable_path(self, file: Path) -> str | Path:
        """A path that opens the very file this snapshot read (not whatever is there now)."""
        return file if self.handles is None else self.handles.readable_path(file)

    def check_hashes(self, progress: ProgressCallback | None = None) -> list[Problem]:
        """Every recorded file of this snapshot against the sha256 and size ``config.json`` records.

        The files hashed are the very ones this snapshot opened (and a load maps),
        not whatever the path names by now. A lone file records no hashes: ``[]``.
        """
        files = self.record.get(FILES_KEY)
        if self.opened is None or not isinstance(files, dict):
            return []
        return check_opened(self.opened, files, progress)

    def close(self) -> None:
        """Close the files held open (tensors already read or mapped stay valid)."""
        if self.handles is not None:
            self.handles.close()


def _member(opened: OpenedDirectory, name: Any, where: Path) -> Path:
    """A file named by an index, checked to be a plain file inside the directory, held open."""
    if not plain_name(name):
        raise WeightsError(f"{where} names an invalid shard file {str(name)[:80]!r}")
    path = opened.check(name)
    if path is None:
        raise WeightsError(f"{where} names the shard {name!r}, which is missing")
    return path


def _safe_open(
    path: Path, device: str = "cpu", *, backend: str = "mmap", source: str | Path | None = None
) -> Any:
    """safetensors' reader on ``source`` (the snapshot's open file); ``path`` names it in errors."""
    from safetensors import SafetensorError, safe_open

    source = path if source is None else source
    try:
        if backend == "mmap":
            return safe_open(source, framework="pt", device=device)
        return safe_open(source, framework="pt", device=device, backend=backend)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise WeightsError(
            f"{path} is not a readable safetensors file ({text})",
            hint="the file may be truncated or corrupt; save or download it again",
        ) from None


def read_saved(path: Path, *, foreign: bool = False) -> SavedModel:
    """Read the record and the tensor map of a saved directory or lone file.

    Every safetensors header is parsed and checked here; no tensor data is
    read (content hashes are :mod:`zoo_core.sources.verify`'s job). A directory is read
    as one snapshot: its files are opened through one handle of the directory
    and stay open in the result (``saved.close()`` releases them), so a save
    replacing the directory meanwhile cannot mix two models; if one does
    replace it mid-read, the read starts again.

    With ``foreign=True`` the source may come from another tool (a
    ``PyTorchModelHubMixin`` or ``save_torch_model`` directory, a bare
    ``.safetensors`` file): ``config.json`` is optional, and the record's
    ``config`` holds whatever config fields it offers, for the caller to match
    against an architecture it names.

    Raises:
        WeightsError: the source is not a zoo model, or its JSON parts are broken.
    """
    path = Path(path)
    if path.is_dir():
        for attempt in range(_READ_ATTEMPTS):
            opened = OpenedDirectory(path)
            try:
                return read_opened(opened, foreign=foreign)
            except Vanished:
                opened.close()
                time.sleep(0.001 * attempt)
            except BaseException:
                opened.close()
                raise
        raise WeightsError(
            f"{path} was replaced {_READ_ATTEMPTS} times while zoo read it",
            hint="wait until the saves into it finish, then try again",
        )
    if path.is_file():
        return _read_lone_file(path, foreign)
    raise WeightsError(f"{path} is neither a file nor a directory")


def read_opened(opened: OpenedDirectory, *, foreign: bool = False) -> SavedModel:
    """:func:`read_saved` for a directory already opened (verify reads the same snapshot).

    Raises:
        Vanished: a save replaced the directory while it was read.
        WeightsError: as :func:`read_saved`.
    """
    path = opened.path
    config_path = path / CONFIG_NAME
    raw = read_member_bytes(opened, CONFIG_NAME)
    data = None if raw is None else parse_json(raw, config_path)
    if foreign:
        record = _foreign_record(data if data is not None else {})
    elif data is None:
        raise WeightsError(
            f"{path} has no {CONFIG_NAME}, so it is not a saved zoo model",
            hint="save one with 'zoo save NAME DIR', or name the architecture with --arch",
        )
    else:
        record = check_record(data, config_path)
    saved = SavedModel(
        path=path,
        kind="directory",
        record=record,
        handles=opened.handles,
        opened=opened,
        config_bytes=raw,
    )
    # Exactly the files config.json records are the model: a stray model.safetensors dropped
    # beside recorded shards (or a user's own weights file) is never what a load reads.
    recorded = None if foreign else recorded_weights(record)
    if recorded is not None and INDEX_NAME in recorded:
        _map_index(saved, opened, recorded)
    elif recorded is not None and WEIGHTS_NAME in recorded:
        _map_single(saved, _member(opened, WEIGHTS_NAME, config_path))
    elif opened.lexists(WEIGHTS_NAME):
        _map_single(saved, _member(opened, WEIGHTS_NAME, path))
    elif opened.lexists(INDEX_NAME):
        _map_index(saved, opened, None)
    else:
        if opened.replaced():
            raise Vanished(str(path))
        raise WeightsError(f"{path} has neither {WEIGHTS_NAME} nor {INDEX_NAME}")
    if recorded is not None:
        _warn_unrecorded(opened, recorded)
    _check_tensor_count(saved)
    return saved


class UnrecordedFileWarning(ZooWarning):
    """A weights file in a model directory that its ``config.json`` does not record (ignored)."""


def unrecorded_files(names: list[str], recorded: set[str]) -> list[str]:
    """The weights files among ``names`` (a directory's entries) that the record does not name."""
    return sorted(n for n in names if is_zoo_file(n) and n != CONFIG_NAME and n not in recorded)


def _warn_unrecorded(opened: OpenedDirectory, recorded: set[str]) -> None:
    try:
        names = opened.names()
    except OSError:
        return
    stray = unrecorded_files(names, recorded)
    if stray:
        shown = ", ".join(repr(n[:80]) for n in stray[:5]) + (" ..." if len(stray) > 5 else "")
        warnings.warn(
            f"{opened.path}: ignoring {shown}: its {CONFIG_NAME} does not record "
            f"{'them' if len(stray) > 1 else 'it'}, so {'they are' if len(stray) > 1 else 'it is'} "
            "not part of the model",
            UnrecordedFileWarning,
            stacklevel=2,
        )


def _read_lone_file(path: Path, foreign: bool) -> SavedModel:
    handles = Handles()
    try:
        fd = handles.add(path, open_regular(path))
    except OSError as err:
        raise WeightsError(f"cannot read {path}: {err.strerror or err}") from None
    header = read_header(path, fd=fd)
    record = metadata_to_record(header.metadata, path)
    if foreign:
        record = _foreign_record(record)
    elif "architecture" not in record:
        raise WeightsError(
            f"{path} carries no zoo metadata, so zoo cannot tell which architecture it is",
            hint="name it: zoo load FILE --arch NAME (or load_model(FILE, arch=NAME))",
        )
    saved = SavedModel(path=path, kind="file", record=check_record(record, path), handles=handles)
    _map_single(saved, path, header)
    return saved


def _check_tensor_count(saved: SavedModel) -> None:
    limit = limits.max_tensors()
    if len(saved.key_to_file) > limit:
        raise WeightsError(
            f"{saved.path} holds {len(saved.key_to_file)} tensors; zoo reads at most {limit}",
            hint="if the model is genuine, raise the limit: ZOO_MAX_TENSORS=N (see SECURITY.md)",
        )


def _foreign_record(data: Any) -> dict[str, Any]:
    """A record for weights saved by another tool: config fields, where they can be found."""
    if not isinstance(data, dict):
        data = {}
    if isinstance(data.get("config"), dict) and ("architecture" in data or "zoo_format" in data):
        fields = data["config"]  # a zoo record: its config, whatever architecture it names
    else:
        fields = {k: v for k, v in data.items() if isinstance(k, str)}
    return {"architecture": None, "config": fields}


def _header(saved: SavedModel, file: Path) -> Header:
    if file not in saved.headers:
        saved.headers[file] = read_header(file, fd=saved.fd(file))
    return saved.headers[file]


def _map_single(saved: SavedModel, file: Path, header: Header | None = None) -> None:
    if header is not None:
        saved.headers[file] = header
    header = _header(saved, file)
    saved.key_to_file = dict.fromkeys(header.tensors, file)
    # huggingface_hub drops shared tensors on save and notes "dropped -> kept" in the metadata.
    saved.aliases = _aliases(header.metadata, saved.key_to_file)


def _map_index(saved: SavedModel, opened: OpenedDirectory, recorded: set[str] | None) -> None:
    where = saved.path if recorded is None else saved.path / CONFIG_NAME
    index_path = _member(opened, INDEX_NAME, where)
    index = read_member_json(opened, INDEX_NAME)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{index_path} has no 'weight_map' object")
    limit = limits.max_tensors()
    if len(weight_map) > limit:
        raise WeightsError(
            f"{index_path} lists {len(weight_map)} tensors; zoo reads at most {limit}",
            hint="if the model is genuine, raise the limit: ZOO_MAX_TENSORS=N (see SECURITY.md)",
        )
    files: dict[str, Path] = {}
    for key, name in weight_map.items():
        if not isinstance(name, str):
            raise WeightsError(
                f"{index_path} maps {str(key)[:80]!r} to a {type(name).__name__}, "
                "not a shard file name"
            )
        if name not in files:
            if recorded is not None and name not in recorded:
                raise WeightsError(
                    f"{index_path} names the shard {str(name)[:80]!r}, which "
                    f"{CONFIG_NAME} does not record",
                    hint="the directory was changed after it was saved; save the model again",
                )
            files[name] = _member(opened, name, index_path)
        saved.key_to_file[key] = files[name]
    for name, file in files.items():
        held = set(_header(saved, file).tensors)
        named = {k for k, f in saved.key_to_file.items() if f == file}
        if named - held:
            raise WeightsError(
                f"{index_path} places {_few(sorted(named - held))} in {name}, which lacks them"
            )
        if held - named:
            raise WeightsError(
                f"{name} holds {_few(sorted(held - named))}, which {index_path.name} does not list"
            )
    meta = index.get("metadata")
    saved.aliases = _aliases(meta if isinstance(meta, dict) else {}, saved.key_to_file)


def _aliases(meta: dict[str, Any], keys: dict[str, Path]) -> dict[str, str]:
    return {
        k: v
        for k, v in meta.items()
        if isinstance(v, str)
        and v in keys
        and k not in keys
        and k != "format"
        and not k.startswith(META_PREFIX)
    }


# Floating dtypes a model computes in; float8 is a storage format that forward cannot use.
_COMPUTE_FLOATS = {"F64", "F32", "F16", "BF16"}


def structure_problems(
    saved: SavedModel, expected: dict[str, torch.Tensor], *, cast: bool = False
) -> list[str]:
    """Every way the saved tensors differ from what the model expects (keys, shapes, dtypes).

    Floating tensors may be saved in any one of float64, float32, float16 or
    bfloat16 (a model saved in bfloat16 loads in bfloat16), but not in float8
    and not in a mix of them, which would load into a model whose forward
    fails; ``cast=True`` (a load that casts every float to one dtype) allows
    the mix. Integer and bool tensors must match exactly.

    Names the model ties (one tensor in ``expected`` under several names) need
    be stored once, under any of them: the others become aliases of it in
    ``saved.aliases`` (how weights from tools that drop tied names load).
    """
    _adopt_ties(saved, expected)
    available = set(saved.key_to_file) | set(saved.aliases)
    missing = sorted(set(expected) - available)
    unexpected = sorted(available - set(expected))
    problems = []
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    shapes, dtypes = [], []
    # Per dtype the model expects, the saved floating dtypes seen (and one key of each).
    floats: dict[str, dict[str, str]] = {}
    for key, file in saved.key_to_file.items():
        if key not in expected:
            continue
        info = _header(saved, file).tensors[key]
        want = expected[key]
        if info.shape != tuple(want.shape):
            shapes.append(f"{key} {list(info.shape)} (model expects {list(want.shape)})")
        want_code = _dtype_code(want.dtype)
        if want.is_floating_point() and info.dtype in _COMPUTE_FLOATS:
            floats.setdefault(want_code, {}).setdefault(info.dtype, key)
        elif want.is_floating_point() and info.is_floating:  # float8: storage only
            dtypes.append(f"{key} {info.dtype} (model expects F64, F32, F16 or BF16)")
        elif want.is_floating_point() or info.dtype != want_code:
            dtypes.append(f"{key} {info.dtype} (model expects {want_code})")
    if shapes:
        problems.append("wrong shape: " + _few(shapes))
    if dtypes:
        problems.append("wrong dtype: " + _few(dtypes))
    for seen in floats.values():
        if len(seen) > 1 and not cast:
            mix = ", ".join(f"{code} ({key})" for code, key in sorted(seen.items()))
            problems.append(f"mixed floating dtypes: {mix}; load with a dtype to cast them to one")
    return problems


def _adopt_ties(saved: SavedModel, expected: dict[str, torch.Tensor]) -> None:
    for names in same_tensor_groups(expected):
        stored = [n for n in names if n in saved.key_to_file]
        if not stored:
            stored = [saved.aliases[n] for n in names if n in saved.aliases]
        if not stored:
            continue
        for name in names:
            if name not in saved.key_to_file and name not in saved.aliases:
                saved.aliases[name] = stored[0]


def _dtype_code(dtype: torch.dtype) -> str:
    from zoo_core.storage.safetensors_io import torch_codes

    return torch_codes().get(dtype, str(dtype).removeprefix("torch."))


def check_structure(
    saved: SavedModel, expected: dict[str, torch.Tensor], *, cast: bool = False
) -> None:
    """Compare the saved keys, shapes and dtypes with the model's, naming every mismatch.

    Only headers are consulted (already read by :func:`read_saved`): this is cheap.
    ``cast`` is as in :func:`structure_problems`.

    Raises:
        WeightsError: keys missing, unexpected, or of another shape or kind of dtype.
    """
    problems = structure_problems(saved, expected, cast=cast)
    if problems:
        arch = saved.record.get("architecture")
        raise WeightsError(
            f"weights in {saved.path} do not fit {arch}: " + "; ".join(problems),
            hint="the weights were saved from another architecture or config",
        )


def _few(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def read_tensors(
    saved: SavedModel,
    keys: list[str] | None = None,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, torch.Tensor]:
    """Read tensors shard by shard, placing and casting each one as it is read.

    Floating tensors are cast to ``dtype`` one at a time, so at most one extra
    copy of a single tensor exists during a cast. Integer and bool tensors keep
    their dtype. A memory-mapped tensor that the file places at an address that
    is not a multiple of its element size (possible in other tools' files, never
    in zoo's) is copied into aligned memory and named in ``saved.realigned``:
    kernels may not read misaligned elements, or read them another, slower way.
    ``progress(done, total)`` counts the stored bytes of the tensors read
    (mapped, for a memory-mapped read: their pages are read on first use).
    """
    wanted = set(saved.key_to_file) | set(saved.aliases) if keys is None else set(keys)
    # A wanted alias needs its kept tensor read, even when that name is not wanted itself.
    needed = wanted | {saved.aliases[k] for k in wanted if k in saved.aliases}
    target = str(device) if device is not None else "cpu"
    by_file: dict[Path, list[str]] = {}
    for key, file in saved.key_to_file.items():
        if key in needed:
            by_file.setdefault(file, []).append(key)
    out: dict[str, torch.Tensor] = {}
    if device is not None and device.type == "cuda":
        from zoo_core.storage.gpu_reader import pipeline_enabled, read_files

        if pipeline_enabled(device):  # threaded reads into pinned buffers, async copies
            # Keyed by the snapshot's open files (see storage.snapshot), not by their paths.
            plan = {
                Path(saved.readable_path(file)): (_header(saved, file), file_keys)
                for file, file_keys in by_file.items()
            }
            out, by_file = read_files(plan, device, dtype=dtype), {}
    sizes = {
        key: _header(saved, file).tensors[key].end - _header(saved, file).tensors[key].begin
        for file, file_keys in (by_file.items() if progress is not None else ())
        for key in file_keys
    }
    done, total = 0, sum(sizes.values())
    for file, file_keys in by_file.items():
        # A cast makes a copy: reading with pread lets each source tensor go once cast,
        # where a mapping would keep the whole file's pages resident until the end.
        casting = dtype is not None and target == "cpu"
        backend = "pread" if casting else "mmap"
        with _safe_open(file, target, backend=backend, source=saved.readable_path(file)) as f:
            for key in file_keys:
                try:
                    tensor = f.get_tensor(key)
                except Exception as err:  # safetensors raises its own error types here
                    raise WeightsError(f"cannot read tensor {key!r} from {file}: {err}") from None
                if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    tensor = tensor.to(dtype)
                if tensor.device.type == "cpu" and tensor.data_ptr() % tensor.element_size():
                    tensor = tensor.clone()  # torch's allocator aligns to 64 bytes
                    saved.realigned.append(key)
                out[key] = tensor
                if progress is not None:
                    done += sizes[key]
                    progress(done, total)
    for alias, kept in saved.aliases.items():
        if alias in wanted and kept in out:
            out[alias] = out[kept]
    return {k: t for k, t in out.items() if k in wanted}


def reads_on_first_use(device: torch.device | None, dtype: torch.dtype | None) -> bool:
    """Whether :func:`read_tensors` memory-maps the files (their pages are read when first used).

    It does for a plain CPU load; a cast or another device reads everything at once.
    """
    target = str(device) if device is not None else "cpu"
    return target == "cpu" and dtype is None
