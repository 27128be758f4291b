"""What ``zoo predict`` accepts as input, and how it answers (issue 19, item 13).

Big-endian ``.npy`` files are converted; long double, complex, time, date and text arrays
are refused with a plain message (exit 2, never an internal error); non-finite outputs are
``null`` in ``--json`` (which stays JSON); an image decoding to more pixels than
``ZOO_MAX_IMAGE_PIXELS`` is refused from its header, before it is decoded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from zoo_core.errors import UsageError
from zoo_core.pretrained.transforms import load_input_file

LINEAR = "linear_regression.diabetes"  # 10 features in, one value out


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i8", ">i4", "<u2", ">u4", "u8", "<f2"])
def test_byte_orders_and_integer_widths_are_converted(tmp_path: Path, dtype: str) -> None:
    values = np.arange(20).reshape(2, 10)
    path = tmp_path / "x.npy"
    np.save(path, values.astype(dtype))
    loaded = load_input_file(path, None)
    assert loaded.dtype.isnative
    assert np.array_equal(loaded.astype(np.int64), values)


@pytest.mark.parametrize(
    ("dtype", "said"),
    [
        ("g", "long double"),
        ("G", "complex numbers"),
        ("c8", "complex numbers"),
        ("m8[s]", "time spans"),
        ("M8[D]", "dates"),
        ("U3", "text"),
        ("V8", "raw or structured"),
    ],
)
def test_dtypes_a_model_cannot_take_are_refused_plainly(
    tmp_path: Path, zoo_main, dtype: str, said: str
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 10), dtype=dtype))
    with pytest.raises(UsageError, match=said):
        load_input_file(path, None)
    code, _, err = zoo_main("predict", LINEAR, str(path))
    assert code == 2, err
    assert err.startswith("zoo: error:") and said in err and "internal error" not in err


def test_arrays_given_in_python_are_checked_alike() -> None:
    from zoo_core.pretrained.transforms import native_array

    with pytest.raises(UsageError, match="time spans"):
        native_array(np.zeros(3, dtype="m8[s]"))
    with pytest.raises(UsageError, match="beyond what int64 holds"):
        native_array(np.array([2**64 - 1], dtype=np.uint64))


def test_json_stays_json_with_non_finite_values(tmp_path: Path, zoo_main) -> None:
    path = tmp_path / "x.npy"
    values = np.ones((3, 10), dtype=np.float32)
    values[0, 0], values[1, 0], values[2, 0] = np.nan, np.inf, -np.inf
    np.save(path, values)
    code, out, err = zoo_main("predict", LINEAR, str(path), "--json")
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    rows = json.loads(out)["predictions"]  # strict JSON
    assert [row["values"] for row in rows] == [[None], [None], [None]]


def test_an_image_bomb_is_refused_before_it_is_decoded(
    tmp_path: Path, zoo_main, monkeypatch
) -> None:
    image = pytest.importorskip("PIL.Image")
    path = tmp_path / "bomb.png"
    image.new("L", (5000, 5000)).save(path)  # 25 megapixels in a few KB
    assert path.stat().st_size < 100_000
    code, _, err = zoo_main("predict", "simple_cnn.digits", str(path))
    assert code == 2, err
    assert "is 5000x5000 pixels; zoo reads images of at most 16777216 pixels" in err
    assert "ZOO_MAX_IMAGE_PIXELS" in err
    monkeypatch.setenv("ZOO_MAX_IMAGE_PIXELS", str(5000 * 5000))
    code, _, err = zoo_main("predict", "simple_cnn.digits", str(path))
    assert code == 0, err  # a genuine large image, allowed on purpose
