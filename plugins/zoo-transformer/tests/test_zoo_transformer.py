"""Tests of zoo-transformer: zoo's conformance checks (one test each), then our own."""

import pytest
import torch

import zoo_core
from zoo_core.testing import parametrize_with_checks


@parametrize_with_checks(["tiny_transformer"])
def test_zoo_conformance(model, check):
    check(model)


# The linear-projection path is a different model: check it too.
@parametrize_with_checks(["tiny_transformer"], config={"input_kind": "features", "pooling": "max"})
def test_zoo_conformance_features(model, check):
    check(model)


def test_output_shape():
    model = zoo_core.create_model("tiny_transformer", num_classes=3, seed=0)
    assert zoo_core.call_model(model, model.example_input(4)).shape == (4, 3)


def test_padding_mask_ignores_padded_tokens():
    model = zoo_core.create_model("tiny_transformer", seed=0).eval()
    ids = torch.randint(0, 1000, (2, 10))
    mask = torch.arange(10) < torch.tensor([[6], [10]])
    other = ids.clone()
    other[0, 6:] = (ids[0, 6:] + 1) % 1000  # only padded positions change
    with torch.no_grad():
        first, second = model(ids, mask=mask), model(other, mask=mask)
        # The first row padded equals the first row cut to its real length.
        short = model(ids[:1, :6], mask=mask[:1, :6])
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first[:1], short, atol=1e-5, rtol=1e-5)
    with pytest.raises(zoo_core.InputShapeError, match="bool mask"):
        model(ids, mask=mask.long())


def test_variable_length_and_input_errors():
    model = zoo_core.create_model("tiny_transformer", max_len=8, seq_len=8, seed=0).eval()
    assert model(torch.randint(0, 1000, (2, 5))).shape == (2, 2)
    with pytest.raises(zoo_core.InputShapeError, match="at most 8 steps"):
        model(torch.randint(0, 1000, (2, 9)))
    with pytest.raises(zoo_core.InputShapeError, match="integer token ids"):
        model(torch.randn(2, 5))


def test_heads_must_divide_the_width():
    with pytest.raises(zoo_core.ConfigError, match="must divide d_model"):
        zoo_core.create_model("tiny_transformer", d_model=30, num_heads=4)
