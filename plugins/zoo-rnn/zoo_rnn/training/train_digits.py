"""Train ``simple_rnn.digits``: scikit-learn's 8x8 digits read row by row.

Each image is a sequence of 8 time steps (its rows) of 8 features (the pixels
of a row). Reproducible: the seed, the split and the schedule are fixed, and
torch runs on one thread, so two runs on one machine write the same bytes.
Takes well under a minute on 2 CPU cores. Needs scikit-learn (a training
dependency only)::

    python -m zoo_rnn.training.train_digits            # rewrites the shipped variant
    python -m zoo_rnn.training.train_digits --out DIR  # anywhere else

Split: scikit-learn's order, the last 25% (rows 1347 onward) is the test split
and is never trained on. Inputs are the raw pixel values 0-16 as the data set
stores them; the scaling is recorded in ``weights.preprocessing`` and applied
by zoo.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

import zoo_core

SEED = 0
TEST_START = 1347  # ceil(0.75 * 1797): rows 1347-1796 are the test split
HIDDEN = 64
EPOCHS = 60
BATCH = 64
LEARNING_RATE = 5e-3
OUT = Path(__file__).resolve().parent.parent / "weights" / "digits"
COMMAND = "python -m zoo_rnn.training.train_digits"


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw images (N, 8, 8) with values 0-16 and integer labels, split by row order."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    return images[:TEST_START], labels[:TEST_START], images[TEST_START:], labels[TEST_START:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to save the variant")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    train_x, train_y, test_x, test_y = load_split()
    scale = 1.0 / 16.0

    def prepare(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x) * scale

    model = zoo_core.create_model(
        "simple_rnn",
        input_size=8,
        hidden_size=HIDDEN,
        output_size=10,
        cell="gru",
        seq_len=8,
        seed=SEED,
    )
    inputs, targets = prepare(train_x), torch.from_numpy(train_y)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    order = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(inputs), generator=order).split(BATCH):
            optimizer.zero_grad()
            loss_fn(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(prepare(test_x)).argmax(1).numpy()
    accuracy = round(float((predicted == test_y).mean()), 4)

    weights = {
        "tag": "digits",
        "summary": "8x8 handwritten digits read row by row (scikit-learn), 10 classes",
        "task": "classification",
        "dataset": {
            "name": "scikit-learn digits (sklearn.datasets.load_digits)",
            "url": "https://archive.ics.uci.edu/dataset/80",
            "license": "CC-BY-4.0",
            "train_split": f"rows 0-{TEST_START - 1}",
            "test_split": f"rows {TEST_START}-1796",
        },
        "metrics": [{"name": "accuracy", "value": accuracy, "split": "test"}],
        "labels": [str(i) for i in range(10)],
        "head": ["fc"],
        "preprocessing": {"layout": "NTC", "reshape": [8, 8], "dtype": "float32", "scale": scale},
        "license": "CC-BY-4.0",
        "training": {
            "script": "zoo_rnn/training/train_digits.py",
            "command": COMMAND,
            "seed": SEED,
            "recipe": f"GRU {HIDDEN}, Adam lr {LEARNING_RATE}, batch {BATCH}, {EPOCHS} epochs",
        },
    }
    path = zoo_core.save_model(model, args.out, weights=weights)
    digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()
    print(f"simple_rnn.digits: test accuracy {accuracy} -> {path}")
    print(f"config.json sha256 {digest}")


if __name__ == "__main__":
    main()
