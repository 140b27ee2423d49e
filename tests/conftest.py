"""Suite-wide: every test starts from the same random state (Python, NumPy, torch), so a test that draws random
weights, crops or samples behaves the same in every run and in any order (spawned workers seed themselves)."""
import random

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _fixed_random_state():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
