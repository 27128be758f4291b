"""Applying a variant's recorded preprocessing to raw inputs (arrays, tensors, images).

The ``preprocessing`` part of a variant's ``weights`` section (see
:mod:`zoo_core.pretrained.metadata`) says what the weights expect; this module turns
raw data, as the data set stores it, into that tensor: reshape each sample,
cast, ``x * scale``, then ``(x - mean) / std`` per channel. Image files are
first turned into the raw array the data set would hold (Pillow needed: the
``zoo-core[images]`` extra).

:class:`Transforms` is that preprocessing as one picklable callable, for a
``DataLoader`` (``get_pretrained(NAME).transforms()``); :func:`zoo_core.predict`
and :func:`zoo_core.preprocess` run the very same object, so what a training
loop feeds a model and what ``predict`` feeds it never disagree.

>>> import numpy as np
>>> pre = {"reshape": [1, 2, 2], "scale": 0.5, "mean": [1.0], "std": [2.0], "layout": "NCHW"}
>>> preprocess_array(np.full((1, 4), 6.0), pre).tolist()
[[[[1.0, 1.0], [1.0, 1.0]]]]
>>> Transforms(pre)(np.full(4, 6.0)).shape          # one sample: no batch dimension
torch.Size([1, 2, 2])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo_core.errors import MissingDependencyError, UsageError
from zoo_core.storage import limits

__all__ = [
    "IMAGE_SUFFIXES",
    "Transforms",
    "image_array",
    "load_image",
    "load_input_file",
    "native_array",
    "preprocess_array",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# An input file beyond this is a mistake, not one batch of inputs.
_MAX_INPUT_BYTES = 1024 * 1024 * 1024


def preprocess_array(array: Any, preprocessing: dict[str, Any] | None) -> torch.Tensor:
    """A batch of raw samples (leading batch dimension) as the tensor the model expects.

    Raises:
        UsageError: the samples do not have the size ``reshape`` asks for, or
            are not numbers.
    """
    pre = preprocessing or {}
    data = native_array(np.asarray(array))
    if data.ndim < 1:
        raise UsageError("inputs need a leading batch dimension")
    shape = pre.get("reshape")
    if shape is not None:
        want = int(np.prod(shape))
        have = int(np.prod(data.shape[1:]))
        if have != want:
            raise UsageError(
                f"each input has {have} values {list(data.shape[1:])}, "
                f"but the model expects {want} {list(shape)}",
                hint="inputs need a leading batch dimension: shape (N, ...)",
            )
        data = data.reshape(data.shape[0], *shape)
    tensor = torch.as_tensor(np.ascontiguousarray(data))
    if "dtype" in pre:
        # One cast into the target dtype first: the arithmetic below then happens in it,
        # exactly as a training script that starts from torch.from_numpy(x).float() does.
        tensor = tensor.to(getattr(torch, pre["dtype"]))
    elif (
        tensor.is_floating_point()
        or tensor.dtype == torch.bool
        or pre.keys() & {"scale", "mean", "std"}
    ):
        tensor = tensor.to(torch.float32)
    else:
        tensor = tensor.to(torch.int64)  # token ids and class indices stay integers
    if "scale" in pre:
        tensor = tensor * pre["scale"]
    mean, std = pre.get("mean"), pre.get("std")
    if mean is not None or std is not None:
        tensor = _normalise(tensor, mean, std, pre.get("layout"))
    return tensor


# What each kind of numpy dtype that a model cannot take is, for the message refusing it.
_REFUSED_KINDS = {
    "c": "complex numbers (zoo predict takes real values)",
    "m": "time spans (timedelta64), not numbers a model takes; convert them, e.g. to seconds",
    "M": "dates (datetime64), not numbers a model takes; convert them first",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "raw or structured records",
}


def native_array(data: np.ndarray, where: str = "inputs") -> np.ndarray:
    """``data`` as an array torch takes: native byte order, a bool, integer or float dtype.

    Big-endian arrays (``>f4``, ``>i8``) are converted; unsigned integers wider
    than 8 bits become int64 (refused if a value does not fit). Long double,
    complex, time, date, object, text and structured arrays are refused.

    Raises:
        UsageError: a dtype zoo cannot feed a model, said plainly.
    """
    kind, shown = data.dtype.kind, str(data.dtype)
    if kind in _REFUSED_KINDS:
        raise UsageError(
            f"{where} hold {shown} values: {_REFUSED_KINDS[kind]}",
            hint="save bool, integer or float (16, 32 or 64 bit) values: numpy.save(path, "
            "array.astype('float32'))",
        )
    if kind == "f" and data.dtype.itemsize > 8:
        raise UsageError(
            f"{where} hold {shown} (long double) values, which torch cannot take",
            hint="save them as float64: numpy.save(path, array.astype('float64'))",
        )
    if kind not in "biuf":
        raise UsageError(f"{where} must be numbers, not {shown}")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))  # big-endian files are common enough
    if kind == "u" and data.dtype.itemsize > 1:
        if data.dtype.itemsize == 8 and data.size and int(data.max()) > np.iinfo(np.int64).max:
            raise UsageError(f"{where} hold uint64 values beyond what int64 holds")
        data = data.astype(np.int64)
    return data


def _normalise(
    tensor: torch.Tensor, mean: list[float] | None, std: list[float] | None, layout: str | None
) -> torch.Tensor:
    channels = max(len(mean or [0]), len(std or [1]))
    axis = layout.index("C") if layout and "C" in layout else 1
    shape = [1] * tensor.ndim
    if channels > 1:
        if axis >= tensor.ndim or tensor.shape[axis] != channels:
            raise UsageError(
                f"the preprocessing has {channels} channel statistics, but the inputs "
                f"have shape {list(tensor.shape)}"
            )
        shape[axis] = channels
    if mean is not None:
        if len(mean) == 1:
            tensor = tensor - mean[0]
        else:
            tensor = tensor - torch.tensor(mean, dtype=tensor.dtype).reshape(shape)
    if std is not None:
        if len(std) == 1:
            tensor = tensor / std[0]
        else:
            tensor = tensor / torch.tensor(std, dtype=tensor.dtype).reshape(shape)
    return tensor


def _pillow(what: str) -> Any:
    try:
        import PIL.Image
        import PIL.ImageOps
    except ImportError:
        # Not a mistake on the command line: the environment lacks an extra (exit 1).
        raise MissingDependencyError(
            f"{what} is an image, and reading images needs Pillow",
            hint="pip install 'zoo-core[images]' (or give a .npy array)",
        ) from None
    return PIL


def load_image(path: str | Path, image: dict[str, Any]) -> np.ndarray:
    """One image file as the raw array the data set stores (``image`` from the preprocessing).

    Raises:
        MissingDependencyError: Pillow is missing.
        UsageError: the file is not an image Pillow can read.
    """
    pil = _pillow(str(path))
    Image = pil.Image
    limit = limits.max_image_pixels()
    pillows = Image.MAX_IMAGE_PIXELS
    # Decompression bombs: a small file that decodes to a huge picture. zoo's limit is far
    # below Pillow's own (which lets a 20 KB PNG take 730 MB); checked from the header,
    # before anything is decoded, and given to Pillow for its own checks too.
    Image.MAX_IMAGE_PIXELS = None  # zoo says it (below); opening reads the header only
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                Image.MAX_IMAGE_PIXELS = limit
                width, height = opened.size
                if width * height > limit:
                    raise UsageError(
                        f"{path} is {width}x{height} pixels; zoo reads images of at most "
                        f"{limit} pixels",
                        hint=f"resize it first; if it is genuine, raise "
                        f"{limits.LIMITS['image_pixels'].env}=PIXELS (see SECURITY.md)",
                    )
                picture = pil.ImageOps.exif_transpose(opened).convert(image.get("mode", "RGB"))
    except (
        pil.UnidentifiedImageError,
        OSError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as err:
        raise UsageError(f"cannot read {path} as an image: {err}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillows
    return image_array(picture, image)


def image_array(picture: Any, image: dict[str, Any]) -> np.ndarray:
    """A Pillow image as the raw array the data set stores: mode, resize, crop, scale, invert.

    Returns channels first: ``(C, H, W)``.
    """
    pil = _pillow("the input")
    Image = pil.Image
    mode = image.get("mode", "RGB")
    if picture.mode != mode:
        picture = picture.convert(mode)
    if "resize" in image:
        size = image["resize"]
        w, h = picture.size
        scale = size / min(w, h)
        picture = picture.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR
        )
    if "crop" in image:
        crop = image["crop"]
        w, h = picture.size
        left, top = max(0, (w - crop) // 2), max(0, (h - crop) // 2)
        picture = picture.crop((left, top, left + min(crop, w), top + min(crop, h)))
    data = np.asarray(picture, dtype=np.float32) / 255.0
    if image.get("invert", False):
        data = 1.0 - data
    data = data * float(image.get("max_value", 255))
    # Pillow gives height x width (x channels); the data sets store channels first.
    return data[None] if data.ndim == 2 else np.moveaxis(data, -1, 0)


def load_input_file(path: str | Path, preprocessing: dict[str, Any] | None) -> np.ndarray:
    """Raw samples from one input file: a ``.npy`` batch, or one image (a batch of one).

    ``.npy`` files are read with ``allow_pickle=False``: an object array is refused.

    Raises:
        UsageError: the file is missing, not an array, or an image for a model
            without image preprocessing.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such input file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if path.stat().st_size > _MAX_INPUT_BYTES:
            raise UsageError(f"{path} is larger than 1 GiB; split it into smaller batches")
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UsageError(f"{path} is not a readable .npy array: {text}") from None
        if not isinstance(data, np.ndarray):
            raise UsageError(f"{path} is not a .npy array", hint="give one array per file")
        return native_array(data, str(path))
    if suffix in IMAGE_SUFFIXES:
        image = (preprocessing or {}).get("image")
        if image is None:
            raise UsageError(
                f"{path} is an image, but this model declares no image preprocessing",
                hint="give a .npy array of raw inputs instead",
            )
        return load_image(path, image)[None]
    raise UsageError(
        f"{path}: zoo predict reads .npy arrays and image files, not {suffix or 'this file'}",
        hint="save inputs with numpy.save('inputs.npy', array) (leading batch dimension)",
    )


class Transforms:
    """A variant's recorded preprocessing as one callable: raw inputs in, model inputs out.

    What torchvision's ``weights.transforms()`` and timm's ``create_transform``
    are for their models: hand it to a data set or a ``DataLoader`` (it holds
    only the preprocessing, a dict of plain values, so it pickles into worker
    processes). It takes one sample or a batch, as a numpy array, a tensor or,
    for variants that declare image preprocessing, a Pillow image (needs
    ``zoo-core[images]``):

    - with ``reshape`` recorded, the trailing dimensions holding one sample's
      values are the sample and any dimensions before them are batch
      dimensions: a raw digit ``(8, 8)`` becomes ``(1, 8, 8)``, a batch
      ``(N, 8, 8)`` or ``(N, 64)`` becomes ``(N, 1, 8, 8)``;
    - without it, an input with one dimension fewer than the recorded
      ``layout`` is one sample, anything else a batch.

    :meth:`batch` is the strict form :func:`zoo_core.predict` uses: the first
    dimension is the batch, everything after it one sample.

    >>> info = zoo_core.get_pretrained("simple_cnn.digits")             # doctest: +SKIP
    >>> loader = DataLoader(MyDigits(transform=info.transforms()), num_workers=2)  # doctest: +SKIP
    """

    def __init__(self, preprocessing: Mapping[str, Any] | None = None) -> None:
        self.preprocessing: dict[str, Any] = dict(preprocessing or {})

    def __call__(self, inputs: Any) -> torch.Tensor:
        if _is_image(inputs):
            image = self.preprocessing.get("image")
            if image is None:
                raise UsageError(
                    "this model declares no image preprocessing, so it takes no images",
                    hint="give an array or a tensor of raw values",
                )
            return self.batch(image_array(inputs, image)[None])[0]  # one image, one sample
        data = _as_array(inputs)
        lead = self._batch_dims(data.shape)
        batch = data.reshape(math.prod(lead), *data.shape[len(lead) :])
        out = preprocess_array(batch, self.preprocessing)
        return out.reshape(*lead, *out.shape[1:])

    def batch(self, inputs: Any) -> torch.Tensor:
        """A batch (leading batch dimension) as the tensor the model expects.

        Raises:
            UsageError: the samples do not have the size ``reshape`` asks for.
        """
        return preprocess_array(_as_array(inputs), self.preprocessing)

    def _batch_dims(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        reshape = self.preprocessing.get("reshape")
        if reshape is not None:
            values = math.prod(reshape)
            for k in range(1, len(shape) + 1):
                if math.prod(shape[len(shape) - k :]) == values:
                    return tuple(shape[: len(shape) - k])
            raise UsageError(
                f"an input of shape {list(shape)} does not end in samples of {values} values "
                f"(the model expects {list(reshape)} per sample)",
                hint="give one sample, or a batch of them with the batch dimensions first",
            )
        layout = self.preprocessing.get("layout")
        if layout and len(shape) == len(layout) - 1:
            return ()
        return shape[:1]

    def __repr__(self) -> str:
        return f"Transforms({self.preprocessing!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transforms) and other.preprocessing == self.preprocessing

    __hash__ = None  # type: ignore[assignment]


def _is_image(inputs: Any) -> bool:
    return type(inputs).__module__.startswith("PIL.") and hasattr(inputs, "getbands")


def _as_array(inputs: Any) -> np.ndarray:
    if isinstance(inputs, torch.Tensor):
        tensor = inputs.detach().cpu()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()  # numpy has no bfloat16; float32 holds every value
        return tensor.numpy()
    return np.asarray(inputs)
