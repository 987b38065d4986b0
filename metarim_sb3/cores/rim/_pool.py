"""A private pool of large CPU scratch tensors, shared by the fused RIM kernel's forward and backward passes."""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor


class _BufferPool:
    """Reuse of large CPU scratch tensors between calls.

    A fresh multi-megabyte CPU tensor is returned to the OS when freed and page-faults again on its next first
    touch, which costs as much as the arithmetic here. Buffers are flat; a request takes the smallest free
    buffer that holds it without wasting more than half. Tensors handed back must have no other users.

    :param max_bytes: cap on the bytes kept.
    """

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self._free: list[Tensor] = []
        self._bytes = 0
        self._max_bytes = max_bytes
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        numel = math.prod(shape)
        if like.device.type != "cpu" or numel < 16384:
            return torch.empty(shape, dtype=like.dtype, device=like.device)
        with self._lock:
            fits = [
                (b.numel(), i)
                for i, b in enumerate(self._free)
                if b.dtype == like.dtype and numel <= b.numel() <= 2 * numel
            ]
            if fits:
                buf = self._free.pop(min(fits)[1])
                self._bytes -= buf.numel() * buf.element_size()
                return buf[:numel].view(shape)
        return torch.empty(numel, dtype=like.dtype).view(shape)

    def give(self, tensors: list[Tensor]) -> None:
        """Return tensors obtained from :meth:`take` (views of them are fine)."""
        with self._lock:
            held = {b.data_ptr() for b in self._free}
            for t in tensors:
                base = t if t._base is None else t._base
                if base.device.type != "cpu" or base.dim() != 1 or base.numel() < 16384 or base.data_ptr() in held:
                    continue
                held.add(base.data_ptr())
                self._free.append(base)
                self._bytes += base.numel() * base.element_size()
            while self._bytes > self._max_bytes:
                old = self._free.pop(0)
                self._bytes -= old.numel() * old.element_size()


#: The process-wide pool the kernel takes scratch from.
POOL = _BufferPool()
