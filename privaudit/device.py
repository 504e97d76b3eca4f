"""Where tensors live: ``training.device`` (``auto`` | ``cpu`` | ``cuda``) resolved to a torch device.

``auto`` takes the GPU when PyTorch sees one and the CPU otherwise. A CPU run is bit-reproducible
for a seed; on a GPU, cuDNN's backward kernels are not bit-deterministic, so GPU runs (and a GPU
run against a CPU run) agree up to float rounding (``tests/test_device.py``).
"""

from __future__ import annotations

import torch

from privaudit.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for a configured ``name`` (see :func:`as_device`)."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("training.device is 'cuda' but PyTorch sees no CUDA GPU "
                          f"(torch {torch.__version__}); use device: auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return as_device(name)


def as_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; a GPU is put in :func:`full_fp32` mode first."""
    device = torch.device(device)
    if device.type == "cuda":
        full_fp32()
    return device


def full_fp32() -> None:
    """Switch TF32 off on the GPU (cuDNN convolutions use it by default): its 10-bit mantissa
    rounds losses to ~1e-3 relative, which drowns a zero-order curvature difference with
    h = 1e-3 (loss changes of order h^2) and makes GPU models drift away from the CPU's."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def on_cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stacked state with every tensor on the CPU (what model files hold)."""
    return {name: t.detach().cpu() for name, t in state.items()}
