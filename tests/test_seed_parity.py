"""The seed's own classes, written out as in the text the product grew from.

Weights trained with them must load into the zoo models unchanged and give
identical outputs; the zoo defaults must reproduce the seed's shapes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo_core
from zoo_core.errors import InputShapeError


class LinearRegression(nn.Module):
    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return self.linear(x)


class SimpleCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(16 * 14 * 14, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = torch.flatten(x, 1)
        return self.fc(x)


class SimpleRNN(nn.Module):
    def __init__(self, input_size, hidden_size, output_size):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


SEED_CASES = [
    ("linear_regression", lambda: LinearRegression(input_dim=1, output_dim=1), (10, 1), (10, 1)),
    ("simple_cnn", SimpleCNN, (1, 3, 28, 28), (1, 10)),
    ("simple_rnn", lambda: SimpleRNN(10, 20, 5), (32, 20, 10), (32, 5)),
]


@pytest.mark.parametrize(("name", "make_seed", "in_shape", "out_shape"), SEED_CASES)
def test_seed_weights_load_unchanged(name, make_seed, in_shape, out_shape, tmp_path) -> None:
    torch.manual_seed(1)
    seed_model = make_seed()
    zoo_model = zoo_core.create_model(name)
    assert list(zoo_model.state_dict()) == list(seed_model.state_dict())
    # strict=True: same keys, same shapes, nothing left over.
    zoo_model.load_state_dict(seed_model.state_dict(), strict=True)
    x = torch.randn(*in_shape)
    with torch.no_grad():
        expected = seed_model(x)
        got = zoo_model(x)
    assert got.shape == out_shape
    assert torch.equal(got, expected)


@pytest.mark.parametrize(("name", "make_seed", "in_shape", "out_shape"), SEED_CASES)
def test_example_input_matches_the_seed_shapes(name, make_seed, in_shape, out_shape) -> None:
    model = zoo_core.create_model(name)
    example = model.example_input(batch_size=in_shape[0])
    assert tuple(example.shape) == in_shape
    assert tuple(model(example).shape) == out_shape


def test_cnn_flattened_size_follows_the_config() -> None:
    model = zoo_core.create_model("simple_cnn", in_channels=1, image_size=32, channels=8)
    assert model.fc.in_features == 8 * 16 * 16
    assert tuple(model(torch.randn(2, 1, 32, 32)).shape) == (2, 10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_rnn_cells_and_layers(cell: str) -> None:
    model = zoo_core.create_model("simple_rnn", cell=cell, num_layers=2)
    assert isinstance(model.rnn, {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell])
    assert "rnn.weight_ih_l1" in model.state_dict()
    assert tuple(model(torch.randn(3, 7, 10)).shape) == (3, 5)


@pytest.mark.parametrize(
    ("name", "bad_shape", "expected"),
    [
        ("linear_regression", (4, 3), "(batch, 1)"),
        ("simple_cnn", (1, 28, 28), "(batch, 3, 28, 28)"),
        ("simple_cnn", (1, 3, 32, 32), "(batch, 3, 28, 28)"),
        ("simple_rnn", (2, 5, 11), "(batch, time, 10)"),
    ],
)
def test_wrong_input_shape_is_a_zoo_error(name, bad_shape, expected) -> None:
    model = zoo_core.create_model(name)
    with pytest.raises(InputShapeError) as info:
        model(torch.randn(*bad_shape))
    assert expected in str(info.value)
    assert str(bad_shape) in str(info.value)


def test_seed_argument_is_reproducible_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = zoo_core.create_model("simple_cnn", seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = zoo_core.create_model("simple_cnn", seed=7)
    c = zoo_core.create_model("simple_cnn", seed=8)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key])
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_input_helpers_follow_the_model_device_and_dtype() -> None:
    model = zoo_core.create_model("simple_cnn", dtype="float64")
    assert model.device == torch.device("cpu")
    assert model.randn_like_input(2, 3).dtype == torch.float64
    ids = model.randint_like_input(7, 4, 5)
    assert ids.shape == (4, 5) and ids.dtype == torch.int64
    assert int(ids.min()) >= 0 and int(ids.max()) < 7
    on_meta = zoo_core.create_model("simple_rnn", device="meta")
    assert on_meta.device.type == "meta"
    assert on_meta.example_input(2).is_meta
