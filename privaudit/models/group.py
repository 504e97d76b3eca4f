"""A group of K models of one architecture behind one interface, whatever the backend.

A model is its parameters **and its buffers** (BatchNorm running statistics): every state below is
the ``torch.func.stack_module_state`` layout, parameters and buffers under their module names,
``name -> Tensor[K, ...]``. Groups train in train mode, each model's BatchNorm seeing only its own
batch (``loop``: one model at a time; ``vmap``: BatchNorm under ``vmap`` normalises each model's
slice and updates each model's own stacked statistics), and are queried in eval mode.

* :class:`WideMLP`: an MLP population stacked into one "wide" network (weights ``[K, in, out]``,
  batched matmul over the model axis). On one thread it trains the digits MLP 64-128-10 4x faster
  than a per-model loop at K = 32-64 (``benchmarks/train_throughput.py``).
* :class:`ModuleList`: K ordinary modules run one after another (channels_last for CNNs), the
  fastest way to train CNNs on a CPU.
* :class:`VmapGroup`: stacked parameters through ``torch.func.vmap`` (any architecture).

All store and load the ``torch.func.stack_module_state`` layout of the single-model
architecture (``name -> Tensor[K, ...]``), so a group file is independent of the backend.

**A model's arithmetic does not depend on its group.** On a CPU the last bit of a kernel's result
can depend on where the data lies, not only on its values: MKL's GEMM rounds differently when its
result matrix is not 16-byte aligned (measured with torch 2.13: ``x[1797, 32] @ w[32, 10]`` written
at float offsets 0, 4, 8, 12 of a buffer gives one result, at the 12 other offsets another), and
elementwise kernels (fused Adam, GELU, softplus) compute the last 1-31 elements of a vectorised
range with a scalar loop that rounds differently. In a naively stacked tensor model k starts at
``k * numel`` elements, so both its alignment and which of its elements fall in a scalar tail
depend on its position and on K: the last model of a group of 7 came out different from the same
model trained in a group of 32. So the stacked backends start every model's block at a multiple of
64 bytes past its (64-byte aligned) allocation: parameters are ``[K, S]`` buffers with ``S`` a
multiple of 64 elements, zero padded (:func:`pad_stack`), so a model's elements also meet the
same vector lanes and no scalar tail; activations get their rows padded (:func:`aligned_rows`),
weight gradients are computed by :func:`aligned_bmm`. The padding stays zero: its gradient is
exactly zero. (Intra-op threads are the other source: training pins one, see
:mod:`privaudit.training.trainer`.)
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from privaudit.models.architectures import ACTIVATIONS, ArchSpec, build_model

LANE = 64        # elements: every per-model parameter block starts on a multiple of this
ALIGN = 64       # bytes: every per-model activation / gradient block starts on a multiple of this


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def pad_stack(stacked: torch.Tensor) -> torch.Tensor:
    """``[K, *shape]`` as a new zero-padded ``[K, S]`` buffer, ``S = numel`` rounded up to
    :data:`LANE` elements: model k's block starts ``k * S`` elements past the (64-byte aligned)
    allocation, so every model's elements meet the same alignment and vector lanes, and none falls
    in an elementwise kernel's scalar tail (at most 31 elements), whatever K and k."""
    flat = stacked.detach().reshape(stacked.shape[0], -1)
    out = torch.zeros(stacked.shape[0], round_up(max(flat.shape[1], 1), LANE), dtype=flat.dtype,
                      device=flat.device)
    out[:, :flat.shape[1]] = flat
    return out


def unpad(buffer: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The ``[K, *shape]`` view of a :func:`pad_stack` buffer."""
    n = math.prod(shape)
    whole = n == buffer.shape[1]        # no slice when nothing is padded: its backward would copy
    return (buffer if whole else buffer[:, :n]).view(buffer.shape[0], *shape)


def aligned_rows(n: int, widths: tuple[int, ...], itemsize: int, elementwise: tuple[int, ...] = ()) -> int:
    """The row count ``>= n`` for which a ``[K, rows, w]`` tensor starts every model's block on an
    :data:`ALIGN`-byte boundary for each ``w`` in ``widths`` (GEMM results), and on a multiple of
    64 elements for each ``w`` in ``elementwise`` (activations: vector lanes, also when two threads
    split the tensor in halves)."""
    step = 1
    for w in widths:
        unit = ALIGN // math.gcd(ALIGN, itemsize)          # elements per aligned block
        step = math.lcm(step, unit // math.gcd(unit, w))
    for w in elementwise:
        step = math.lcm(step, LANE // math.gcd(LANE, w))
    return round_up(max(n, 1), step)


def _aligned(rows: int, cols: int, itemsize: int) -> bool:
    return (rows * cols * itemsize) % ALIGN == 0


def aligned_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(a, b)`` (``[K, m, n] @ [K, n, p]``) with each model's result block on an
    :data:`ALIGN`-byte boundary: where ``m * p`` elements are not a multiple of the boundary, the
    product is computed with ``b`` zero-padded to more columns and sliced back (the same columns
    for every model, so every model runs the same kernel)."""
    m, p = a.shape[1], b.shape[2]
    cols = p
    while not _aligned(m, cols, a.element_size()):
        cols += 1
    if cols == p:
        return torch.bmm(a, b)
    return torch.bmm(a, F.pad(b, (0, cols - p)))[:, :, :p]


def stacked_linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h [K, R, in] @ w [K, in, out] + b [K, 1, out]`` with every model's weight gradient on an
    aligned block: autograd's own ``bmm`` backward where ``in * out`` elements fill whole
    :data:`ALIGN`-byte blocks (the usual case), :class:`_StackedLinear` otherwise."""
    if _aligned(w.shape[1], w.shape[2], w.element_size()):
        return torch.baddbmm(b, h, w)
    return _StackedLinear.apply(h, w, b)


class _StackedLinear(torch.autograd.Function):
    """``h [K, R, in] @ w [K, in, out] + b [K, 1, out]``, with the weight gradient computed by
    :func:`aligned_bmm` (autograd's own ``bmm`` backward writes it at ``k * in * out`` floats).
    The backward is made of differentiable ops, so double backward (curvature) works."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(h, w)
        return torch.baddbmm(b, h, w)

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        h, w = ctx.saved_tensors
        gh = torch.bmm(gy, w.transpose(1, 2)) if ctx.needs_input_grad[0] else None
        gw = aligned_bmm(h.transpose(1, 2), gy) if ctx.needs_input_grad[1] else None
        gb = gy.sum(1, keepdim=True) if ctx.needs_input_grad[2] else None
        return gh, gw, gb


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
    """Parameters and buffers of K same-architecture modules, stacked ``name -> [K, ...]``
    (``torch.func.stack_module_state``, detached)."""
    params, buffers = torch.func.stack_module_state(modules)
    return {n: t.detach() for n, t in (params | buffers).items()}


def uses_channels_last(spec: ArchSpec) -> bool:
    """Image models other than the package's MLP run channels_last on a CPU (measured ~1.3-2x for
    convolutions; ``benchmarks/RESULTS.md``); only 4-d inputs are converted."""
    return spec.kind != "mlp"


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


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
    """K MLPs as one network: layer l holds ``weight[K, in, out]`` and ``bias[K, 1, out]``, each
    stored as a :func:`pad_stack` buffer (``weights[l]``, ``biases[l]``: ``[K, S]``); the batch
    rows are padded to :func:`aligned_rows` inside :meth:`forward_each` and sliced off again."""

    def __init__(self, spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                 state: dict[str, torch.Tensor]):
        super().__init__()
        self.spec, self.input_shape, self.n_classes = spec, tuple(input_shape), n_classes
        self.linear_names = sorted({n.rsplit(".", 1)[0] for n in state}, key=lambda s: int(s))
        self.n_models = next(iter(state.values())).shape[0]
        self.shapes = [tuple(state[f"{n}.weight"].shape[:0:-1]) for n in self.linear_names]  # (in, out)
        self.weights = nn.ParameterList(
            [nn.Parameter(pad_stack(state[f"{n}.weight"].transpose(1, 2))) for n in self.linear_names])
        self.biases = nn.ParameterList(
            [nn.Parameter(pad_stack(state[f"{n}.bias"])) for n in self.linear_names])
        self.act = ACTIVATIONS[spec.activation]()

    def weight(self, layer: int) -> torch.Tensor:
        return unpad(self.weights[layer], self.shapes[layer])

    def bias(self, layer: int) -> torch.Tensor:
        return unpad(self.biases[layer], (1, self.shapes[layer][1]))

    def rows(self, n: int, dtype: torch.dtype) -> int:
        widths = tuple(w for shape in self.shapes for w in shape)
        hidden = tuple(o for _, o in self.shapes[:-1])
        return aligned_rows(n, widths, torch.empty((), dtype=dtype).element_size(), hidden)

    def _layers(self, h: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i in range(len(self.weights)):
            h = stacked_linear(h, self.weight(i), self.bias(i))
            if i < last:
                h = self.act(h)
        return h

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        k, n = x.shape[:2]
        h = x.reshape(k, n, -1)
        rows = self.rows(n, h.dtype)
        if rows != n:
            h = F.pad(h, (0, 0, 0, rows - n))
        out = self._layers(h)
        return out if rows == n else out[:, :n]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        h = x.reshape(n, -1)
        rows = self.rows(n, h.dtype)
        if rows != n:
            h = F.pad(h, (0, 0, 0, rows - n))
        out = self._layers(h.unsqueeze(0).expand(self.n_models, *h.shape))
        return out if rows == n else out[:, :n]

    def state(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, n in enumerate(self.linear_names):
            out[f"{n}.weight"] = self.weight(i).detach().transpose(1, 2).clone(memory_format=torch.contiguous_format)
            out[f"{n}.bias"] = self.bias(i).detach().squeeze(1).clone(memory_format=torch.contiguous_format)
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
        return {n: t.contiguous(memory_format=torch.contiguous_format)
                for n, t in stack_states(list(self.members)).items()}

    def models(self) -> Iterator[nn.Module]:
        for m in self.members:
            yield m.eval()


class VmapGroup(ModelGroup):
    """K models of any architecture as stacked parameters and buffers run through
    ``torch.func.vmap`` of ``functional_call`` on one base module (the ``torch.func``
    model-ensembling recipe). Each parameter is a :func:`pad_stack` buffer ``[K, S]``;
    :meth:`params` gives the ``[K, *shape]`` views. Buffers (BatchNorm statistics) are stacked
    ``[K, ...]`` module buffers, updated in place by each model's own training batches."""

    def __init__(self, spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int,
                 state: dict[str, torch.Tensor]):
        super().__init__()
        self.spec, self.input_shape, self.n_classes = spec, tuple(input_shape), n_classes
        base = build_model(spec, input_shape, n_classes).to("meta")
        self.base = [base]  # a list: not a submodule
        self.names = [n for n, _ in base.named_parameters()]
        self.buffer_names = [n for n, _ in base.named_buffers()]
        missing = sorted(set(self.names + self.buffer_names) - set(state))
        if missing:
            raise ValueError(f"stacked state lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        self.shapes = [tuple(state[n].shape[1:]) for n in self.names]
        self.n_models = next(iter(state.values())).shape[0]
        self.stacked = nn.ParameterList([nn.Parameter(pad_stack(state[n])) for n in self.names])
        for i, n in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", state[n].detach().clone())

    def buffers_by_name(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, f"buffer{i}") for i, n in enumerate(self.buffer_names)}

    def params(self) -> dict[str, torch.Tensor]:
        return {n: unpad(p, s) for n, p, s in zip(self.names, self.stacked, self.shapes)}

    def set_grads(self, grads: dict[str, torch.Tensor]) -> None:
        """Give each stacked parameter the gradient ``grads[name] [K, *shape]`` (zero-padded)."""
        for n, p in zip(self.names, self.stacked):
            p.grad = pad_stack(grads[n])

    def forward_each(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base[0].train(self.training)
        call = lambda p, b, xb: torch.func.functional_call(base, (p, b), (xb,))
        return torch.func.vmap(call)(self.params(), self.buffers_by_name(), x)

    def state(self) -> dict[str, torch.Tensor]:
        both = self.params() | self.buffers_by_name()
        return {n: t.detach().clone(memory_format=torch.contiguous_format) for n, t in both.items()}

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
    return ModuleList(modules, channels_last=uses_channels_last(spec))
