"""A group of K models of one architecture behind one interface, whatever the backend.

* :class:`WideMLP`: an MLP population stacked into one "wide" network (weights ``[K, in, out]``,
  batched matmul over the model axis). On this CPU it trains tiny MLPs ~10x faster than a loop
  (``benchmarks/RESULTS.md``).
* :class:`ModuleList`: K ordinary modules run one after another (channels_last for CNNs), the
  fastest way to train CNNs on a CPU.

Both store and load the ``torch.func.stack_module_state`` layout of the single-model
architecture (``name -> Tensor[K, ...]``), so a group file is independent of the backend.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from privaudit.models.architectures import ACTIVATIONS, ArchSpec, build_model


class ModelGroup(nn.Module):
    """Common interface: ``forward_each(x[K, B, ...]) -> [K, B, C]`` and ``forward(x[B, ...])``."""

    n_models: int

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_each(x.unsqueeze(0).expand(self.n_models, *x.shape))

    def state(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def models(self) -> Iterator[nn.Module]:  # pragma: no cover - abstract
        """Each model as a plain ``nn.Module`` (for queries, debugging and interop)."""
        raise NotImplementedError


def stack_states(modules: list[nn.Module]) -> dict[str, torch.Tensor]:
    names = [n for n, _ in modules[0].named_parameters()]
    params = [dict(m.named_parameters()) for m in modules]
    return {n: torch.stack([p[n].detach() for p in params]) for n in names}


def unstack_state(state: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    return {n: t[k].clone().contiguous() for n, t in state.items()}


def single_models(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                  state: dict[str, torch.Tensor]) -> Iterator[nn.Module]:
    """Each model of a stacked state as a plain module in eval mode (on the state's device)."""
    first = next(iter(state.values()))
    for k in range(first.shape[0]):
        model = build_model(spec, input_shape, n_classes).to(first.device)
        model.load_state_dict(unstack_state(state, k))
        yield model.eval()


class WideMLP(ModelGroup):
    """K MLPs as one network: layer l holds ``weight[K, in, out]`` and ``bias[K, 1, out]``."""

    def __init__(self, spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                 state: dict[str, torch.Tensor]):
        super().__init__()
        self.spec, self.input_shape, self.n_classes = spec, tuple(input_shape), n_classes
        self.linear_names = sorted({n.rsplit(".", 1)[0] for n in state}, key=lambda s: int(s))
        self.n_models = next(iter(state.values())).shape[0]
        self.weights = nn.ParameterList(
            [nn.Parameter(state[f"{n}.weight"].transpose(1, 2).contiguous().clone()) for n in self.linear_names])
        self.biases = nn.ParameterList(
            [nn.Parameter(state[f"{n}.bias"].unsqueeze(1).clone()) for n in self.linear_names])
        self.act = ACTIVATIONS[spec.activation]()

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(x.shape[0], x.shape[1], -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
        return h

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, w, b in zip(self.linear_names, self.weights, self.biases):
            out[f"{n}.weight"] = w.detach().transpose(1, 2).contiguous()
            out[f"{n}.bias"] = b.detach().squeeze(1)
        return out

    def models(self) -> Iterator[nn.Module]:
        return single_models(self.spec, self.input_shape, self.n_classes, self.state())


class ModuleList(ModelGroup):
    """K independent modules evaluated in a loop (channels_last for image models)."""

    def __init__(self, modules: list[nn.Module], channels_last: bool = False):
        super().__init__()
        self.members = nn.ModuleList(modules)
        self.n_models = len(modules)
        self.channels_last = channels_last
        if channels_last:
            for m in self.members:
                m.to(memory_format=torch.channels_last)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(self._prep(x[k])) for k, m in enumerate(self.members)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prep(x)
        return torch.stack([m(x) for m in self.members])

    def state(self) -> dict[str, torch.Tensor]:
        return {n: t.contiguous() for n, t in stack_states(list(self.members)).items()}

    def models(self) -> Iterator[nn.Module]:
        for m in self.members:
            yield m.eval()


class VmapGroup(ModelGroup):
    """K models of any architecture as stacked parameters run through ``torch.func.vmap`` of
    ``functional_call`` on one base module (the ``torch.func`` model-ensembling recipe)."""

    def __init__(self, spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                 state: dict[str, torch.Tensor]):
        super().__init__()
        self.spec, self.input_shape, self.n_classes = spec, tuple(input_shape), n_classes
        self.base = [build_model(spec, input_shape, n_classes).to("meta")]  # a list: not a submodule
        self.names = list(state)
        self.n_models = next(iter(state.values())).shape[0]
        self.stacked = nn.ParameterList([nn.Parameter(state[n].clone()) for n in self.names])

    def params(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.stacked))

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        call = lambda p, xb: torch.func.functional_call(self.base[0], p, (xb,))
        return torch.func.vmap(call)(self.params(), x)

    def state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in zip(self.names, self.stacked)}

    def models(self) -> Iterator[nn.Module]:
        return single_models(self.spec, self.input_shape, self.n_classes, self.state())


def group_from_state(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                     state: dict[str, torch.Tensor], backend: str) -> ModelGroup:
    """Rebuild a group from its stacked state for the given backend (``wide``, ``vmap`` or ``loop``)."""
    if backend == "wide":
        return WideMLP(spec, input_shape, n_classes, state)
    if backend == "vmap":
        return VmapGroup(spec, input_shape, n_classes, state)
    modules = [m.train() for m in single_models(spec, input_shape, n_classes, state)]
    return ModuleList(modules, channels_last=spec.kind == "cnn")
