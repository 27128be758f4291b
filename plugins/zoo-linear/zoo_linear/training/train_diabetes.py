"""Fit ``linear_regression.diabetes``: least squares on scikit-learn's diabetes data.

The weights are the closed-form least-squares solution (an intercept column
appended, solved in float64 with ``numpy.linalg.lstsq``) on the training split;
nothing random is involved, so every run writes the same bytes. Needs
scikit-learn (a training dependency only)::

    python -m zoo_linear.training.train_diabetes            # rewrites the shipped variant
    python -m zoo_linear.training.train_diabetes --out DIR  # anywhere else

Split: scikit-learn's order, the last 25% (rows 331 onward) is the test split
and is never fitted on. Inputs are the 10 features exactly as
``load_diabetes()`` returns them (already centred and scaled by scikit-learn),
so the recorded preprocessing is the identity.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

import zoo_core

TEST_START = 331  # ceil(0.75 * 442): rows 331-441 are the test split
OUT = Path(__file__).resolve().parent.parent / "weights" / "diabetes"
COMMAND = "python -m zoo_linear.training.train_diabetes"


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 10) and targets (N,) in float64, split by row order."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x, y = data.data.astype(np.float64), data.target.astype(np.float64)
    return x[:TEST_START], y[:TEST_START], x[TEST_START:], y[TEST_START:]


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares coefficients and intercept: ``y ~ x @ coef + intercept``."""
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return solution[:-1], float(solution[-1])


def r2_score(y: np.ndarray, predicted: np.ndarray) -> float:
    return float(1.0 - ((y - predicted) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="where to save the variant")
    args = parser.parse_args(argv)

    train_x, train_y, test_x, test_y = load_split()
    coef, intercept = fit(train_x, train_y)
    model = zoo_core.create_model("linear_regression", input_dim=10, output_dim=1, seed=0)
    with torch.no_grad():
        model.linear.weight.copy_(torch.from_numpy(coef).reshape(1, 10))
        model.linear.bias.fill_(intercept)
        # The metric is measured on the float32 model that ships, not on the float64 fit.
        predicted = model(torch.from_numpy(test_x).float()).squeeze(1).double().numpy()
    r2 = round(r2_score(test_y, predicted), 4)
    mse = round(float(((test_y - predicted) ** 2).mean()), 2)

    weights = {
        "tag": "diabetes",
        "summary": "Diabetes progression after one year from 10 baseline features (scikit-learn)",
        "task": "regression",
        "dataset": {
            "name": "scikit-learn diabetes (sklearn.datasets.load_diabetes)",
            "url": "https://www4.stat.ncsu.edu/~boos/var.select/diabetes.html",
            "train_split": f"rows 0-{TEST_START - 1}",
            "test_split": f"rows {TEST_START}-441",
        },
        "metrics": [
            {"name": "r2", "value": r2, "split": "test"},
            {"name": "mse", "value": mse, "split": "test"},
        ],
        "head": ["linear"],
        "preprocessing": {"layout": "NC", "reshape": [10], "dtype": "float32"},
        "license": "BSD-3-Clause",
        "training": {
            "script": "zoo_linear/training/train_diabetes.py",
            "command": COMMAND,
            "recipe": "closed-form least squares (numpy.linalg.lstsq) with an intercept",
        },
    }
    path = zoo_core.save_model(model, args.out, weights=weights)
    digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()
    print(f"linear_regression.diabetes: test R2 {r2}, MSE {mse} -> {path}")
    print(f"config.json sha256 {digest}")


if __name__ == "__main__":
    main()
