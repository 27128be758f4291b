"""Tests of zoo-transformer: zoo's conformance checks (one test each), then your own."""

import zoo_core
from zoo_core.testing import parametrize_with_checks


@parametrize_with_checks(["tiny_transformer"])
def test_zoo_conformance(model, check):
    check(model)


def test_output_shape():
    model = zoo_core.create_model("tiny_transformer", num_classes=3, seed=0)
    assert model(model.example_input(4)).shape == (4, 3)
