"""Catch CPU/CUDA device mix-ups on a machine without a GPU.

Under ``with fake_cuda():`` a CPU tensor can *pose* as a CUDA tensor: ``t.to("cuda")``, ``t.cuda()``,
``module.to("cuda")`` and factories called with ``device="cuda"`` return ordinary CPU tensors that report
``device == cuda:0`` and ``is_cuda``, and every torch call that mixes such a tensor with a plain CPU
tensor of one or more dimensions raises the ``RuntimeError`` a GPU would.  Values are computed on the
CPU as usual, so results can be compared with a plain CPU run, and ``.item()``/``.tolist()`` work.

Design.  ``FakeCudaMode`` is a ``torch.overrides.TorchFunctionMode``: it sees every call of the torch
Python API, property reads included (``Tensor.device.__get__``, ``Tensor.grad.__get__``, ...).  Being
fake-CUDA is a property of a tensor's *storage*, so views and in-place results share it for free; the
mode keeps the set of fake storages, keyed by their ``StorageImpl`` address, and drops a key through a
``weakref.finalize`` on the storage (torch keeps one Python object per storage for its whole life), so an
address freed and reused by a new CPU tensor is never mistaken for a fake one.  The rules:

* ``.to``/``.cuda``/``.cpu``/``type_as`` copy when the (fake) device changes, as on a GPU;
* a factory's explicit ``device=`` decides its output's device (and skips the mixing check);
* otherwise an op that has a fake-CUDA input checks for mixing, then tags every output whose storage is
  not an input's: this makes ``p.grad`` (read through ``Tensor.grad.__get__``), optimiser state,
  ``deepcopy`` and ``state_dict`` copies fake-CUDA; outputs sharing an input's storage (views, in-place
  results, ``p.data``) keep that input's device;
* cross-device by design, hence unchecked: ``copy_``, ``Tensor.data = ...`` (``module.to``), ``new_tensor``,
  indexing.

``torch.cuda.is_available`` (hence ``torch.accelerator.is_available``) and a few other ``torch.cuda`` and
``torch.accelerator`` functions (``CUDA_STUBS``) are patched for the duration, so code that picks its
device with them picks "cuda"; ``torch.load(..., map_location="cuda")`` gives fake-CUDA tensors.
Everything is restored on exit.

Limits.  Missed bugs:
* a CPU 0-dim tensor is accepted by every op (real CUDA accepts it only where it acts as a scalar:
  element-wise ops, not ``cat`` or ``matmul``); indexing with tensors on the other device is accepted;
* one fake device: ``cuda:1`` is ``cuda:0``; a CPU ``generator=`` with ``device="cuda"`` is accepted;
* a tensor is fake only while the context is open, and only as far as torch's Python API sees it: C++
  extensions, ``torch.save`` (it writes CPU storages, so a plain ``torch.load`` gives CPU tensors) and
  ``repr`` (no ``device='cuda:0'``) see the CPU tensor underneath; sparse and nested tensors are ignored.
Unsupported (real CUDA code runs and fails, or a false alarm): streams, events, AMP/autocast,
``torch.Generator(device="cuda")``, ``pin_memory``, ``torch.cuda.memory_*``, ops that want some inputs
on the CPU (``pack_padded_sequence``'s lengths), modules that did ``from torch.cuda import is_available``
(not patched).  Do not nest ``fake_cuda()``.
"""

from __future__ import annotations
import __future__

import ast
import contextlib
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode, resolve_name
from torch.utils._pytree import tree_leaves

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")

# Functions replaced while the context is open: what torch and the course call (not all of torch.cuda).
_NO_STREAM = SimpleNamespace(is_capturing=lambda: False, synchronize=lambda: None)  # for Optimizer.step's check
CUDA_STUBS: dict[tuple[ModuleType, str], Callable[..., Any]] = {
    (torch.cuda, "is_available"): lambda: True, (torch.cuda, "device_count"): lambda: 1,
    (torch.cuda, "current_device"): lambda: 0, (torch.cuda, "get_device_name"): lambda device=None: "fake CUDA",
    (torch.cuda, "synchronize"): lambda device=None: None, (torch.cuda, "empty_cache"): lambda: None,
    (torch.cuda, "manual_seed"): lambda seed: None, (torch.cuda, "manual_seed_all"): lambda seed: None,
    (torch.cuda, "is_current_stream_capturing"): lambda: False,
    # torch.random.fork_rng saves and restores the CUDA generators; fake-CUDA tensors draw from the CPU's
    (torch.cuda, "get_rng_state"): lambda device="cuda": torch.zeros(0, dtype=torch.uint8),
    (torch.cuda, "set_rng_state"): lambda new_state, device="cuda": None,
    (torch.cuda, "get_rng_state_all"): lambda: [torch.zeros(0, dtype=torch.uint8)],
    (torch.cuda, "set_rng_state_all"): lambda new_states: None,
    (torch.accelerator, "current_stream"): lambda device=None: _NO_STREAM,
    (torch.accelerator, "current_device_index"): lambda: 0,
    (torch.accelerator, "synchronize"): lambda device=None: None,
}
_MOVES = {Tensor.to, Tensor.cuda, Tensor.cpu, Tensor.type_as}
_CROSS_DEVICE = {Tensor.copy_, Tensor.data.__set__, Tensor.new_tensor, Tensor.__getitem__, Tensor.__setitem__,
                 torch._has_compatible_shallow_copy_type}  # the last two: Module._apply (module.to, .cuda, ...)
_TO_NUMPY = {Tensor.numpy, Tensor.__array__}
# What a fake-CUDA tensor answers.  (Property getters arrive as fresh method-wrappers: compare with ==, not is.)
_GETTERS = {Tensor.device.__get__: CUDA, Tensor.is_cuda.__get__: True, Tensor.is_cpu.__get__: False,
            Tensor.get_device: CUDA.index}


def _tensors(tree: Any) -> Iterator[Tensor]:
    """The tensors in (nested tuples/lists of) ``tree``; dicts are not searched (``__deepcopy__``'s memo)."""
    if isinstance(tree, Tensor):
        yield tree
    elif isinstance(tree, (tuple, list)):
        for item in tree:
            yield from _tensors(item)


def _storage_key(t: Tensor) -> int | None:
    """The address of ``t``'s StorageImpl (shared by its views); None for tensors without one (sparse, ...)."""
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, TypeError):
        return None


def _as_device(device: Any) -> torch.device:
    return device if isinstance(device, torch.device) else torch.device(device)


class FakeCudaMode(TorchFunctionMode):
    """The torch function mode behind ``fake_cuda()``; see the module docstring for the rules."""

    def __init__(self) -> None:
        super().__init__()
        self._fake: set[int] = set()  # storage keys of fake-CUDA tensors

    def is_fake(self, t: Tensor) -> bool:
        """Whether ``t`` poses as a CUDA tensor (only meaningful while the mode is active)."""
        with torch._C.DisableTorchFunction():
            key = _storage_key(t)
        return key is not None and key in self._fake

    def _tag(self, t: Tensor) -> None:
        with torch._C.DisableTorchFunction():
            key = _storage_key(t)
            if key is not None and key not in self._fake:
                self._fake.add(key)
                weakref.finalize(t.untyped_storage(), self._fake.discard, key)

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (), kwargs: dict | None = None
                           ) -> Any:
        # torch pops this mode while this method runs: torch calls made here are not intercepted.
        kwargs = kwargs or {}
        if func in _MOVES:
            return self._move(func, args, kwargs)
        if args and isinstance(args[0], Tensor) and self.is_fake(args[0]):
            if func in _GETTERS:
                return _GETTERS[func]
            if func is Tensor.type and len(args) == 1 and not kwargs:
                return func(*args).replace("torch.", "torch.cuda.", 1)  # torch.cuda.FloatTensor
            if func in _TO_NUMPY:
                raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                                "tensor to host memory first. (fake CUDA)")
        if kwargs.get("device") is not None:  # a factory (zeros, *_like, new_*, tensor, ...) given a device
            to_cuda = _as_device(kwargs["device"]).type == "cuda"
            if to_cuda:
                kwargs = {**kwargs, "device": CPU}
            out = func(*args, **kwargs)
            if to_cuda:
                for t in _tensors(out):
                    self._tag(t)
            return out
        inputs = list(_tensors((args, list(kwargs.values()))))
        if not any(self.is_fake(t) for t in inputs):
            return func(*args, **kwargs)
        if func not in _CROSS_DEVICE and any(t.dim() > 0 and not self.is_fake(t) for t in inputs):
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! (fake CUDA: a CPU tensor met a CUDA one in "
                               f"{resolve_name(func) or getattr(func, '__name__', func)})")
        out = func(*args, **kwargs)
        input_keys = {_storage_key(t) for t in inputs}
        for t in _tensors(out):
            if _storage_key(t) not in input_keys:  # a new storage, not a view or in-place result of an input
                self._tag(t)
        return out

    def _move(self, func: Callable[..., Any], args: tuple, kwargs: dict) -> Tensor:
        """``.to``/``.cuda``/``.cpu``/``.type_as`` with the fake device: copy exactly when the device changes."""
        t, rest = args[0], args[1:]
        copy, memory_format, non_blocking, dtype = kwargs.get("copy", False), kwargs.get("memory_format"), False, None
        if func is Tensor.cpu:
            to_cuda = False
        elif func is Tensor.cuda:
            to_cuda, non_blocking = True, kwargs.get("non_blocking", False)
        else:  # to(device, dtype, ...), to(other), type_as(other)
            kw = {k: v for k, v in kwargs.items() if k != "copy"}
            device, dtype, non_blocking, parsed_format = torch._C._nn._parse_to(*rest, **kw)
            memory_format = memory_format or parsed_format
            if rest and isinstance(rest[0], Tensor):
                device = CUDA if self.is_fake(rest[0]) else CPU
            if device is not None and device.type not in ("cpu", "cuda"):
                return func(*args, **kwargs)  # meta, ...: not ours
            to_cuda = self.is_fake(t) if device is None else device.type == "cuda"
        out = t.to(dtype=dtype or t.dtype, non_blocking=non_blocking, copy=copy or to_cuda != self.is_fake(t),
                   memory_format=memory_format or torch.preserve_format)
        if to_cuda:
            self._tag(out)
        return out


def _loader(mode: FakeCudaMode, load: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.load`` that honours ``map_location="cuda"`` (or a CUDA ``torch.device``) with fake-CUDA tensors."""
    def fake_load(f: Any, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(map_location, (str, torch.device)) or _as_device(map_location).type != "cuda":
            return load(f, map_location, *args, **kwargs)
        out = load(f, CPU, *args, **kwargs)
        for leaf in tree_leaves(out):
            if isinstance(leaf, Tensor):
                mode._tag(leaf)
        return out
    return fake_load


@contextlib.contextmanager
def fake_cuda() -> Iterator[FakeCudaMode]:
    """Let CPU tensors pose as CUDA ones (see the module docstring); yields the mode (``mode.is_fake(t)``)."""
    with contextlib.ExitStack() as stack:
        for (module, name), stub in CUDA_STUBS.items():
            stack.enter_context(mock.patch.object(module, name, stub))
        mode = FakeCudaMode()
        stack.enter_context(mock.patch.object(torch, "load", _loader(mode, torch.load)))
        with mode:
            yield mode


def notebook_function(path: str | Path, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """The top-level function ``name`` of a notebook's .py source, defined in ``namespace`` without running the rest.

    The file is parsed, not executed: only that ``def`` (its decorators included; the last one if it is
    defined twice) is compiled, under the file's name and line numbers, so tracebacks point into the
    notebook.  ``namespace`` must provide the globals the function uses (``torch``, ``adaptation``, ...).
    """
    path = Path(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    defs = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name == name]
    if not defs:
        raise LookupError(f"no top-level function {name!r} in {path}")
    future = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                 and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    code = compile(ast.Module(body=[defs[-1]], type_ignores=[]), str(path), "exec",
                   flags=__future__.annotations.compiler_flag if future else 0, dont_inherit=True)
    exec(code, namespace)
    return namespace[name]
