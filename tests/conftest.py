"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture
def float64():
    """Tensors default to float64 inside the test (tight comparisons of training paths)."""
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)
