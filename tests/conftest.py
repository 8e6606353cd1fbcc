"""Shared fixtures: a seeded random generator for the tests' random signals.

The shared plain functions (engine-run and engine-query as processes, synthesised libraries, a
store read back, the analyzer on an array) are in tests/helpers.py, the signals in
tests/signals.py, the fault-injection hooks in tests/engine_faults.py.
"""

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261128)
