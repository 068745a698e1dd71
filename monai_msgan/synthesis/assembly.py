# Copyright (c) monai-msgan contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""The one assembly engine of sliding-window synthesis, for every scale, region and buffer.

A scale's windows lie on a grid that depends only on the scale's size, the window size and the overlap (MONAI's
``dense_patch_slices``, see :func:`~monai_msgan.synthesis.streaming.window_slices`), so a window is the same whether
the whole image or a region of it is made. The engine visits the windows that touch the requested region in one
fixed order (by start along the last axis, then along the others) and blends them with MONAI's importance map into a
rolling accumulator one window deep along the last axis, on the compute device or in host memory. Once no later
window can reach a slab, the slab is divided by its summed weights and handed to a sink: a tensor on the device, a
tensor in (pinned) host memory, or a file being written. Every pixel therefore receives the same windows' values in
the same order, with the same float operations, whichever region, buffer or sink: a region is bit-identical to the
same crop of the whole image, and buffers on one device give identical images.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from monai.data.utils import compute_importance_map

from monai_msgan.synthesis.streaming import window_slices

__all__ = ["Window", "window_grid", "coarse_support", "BlendingAccumulator", "assemble", "into_tensor", "redundancy"]

Window = tuple[slice, ...]


def _intersects(window: Window, region: Sequence[slice]) -> bool:
    return all(w.start < r.stop and r.start < w.stop for w, r in zip(window, region))


def window_grid(
    image_size: Sequence[int], roi_size: Sequence[int], overlap: float, region: Sequence[slice] | None = None
) -> list[Window]:
    """The windows of an image of ``image_size`` that touch ``region`` (None = all), in the engine's order: by start
    along the last axis, then along the axes before it."""
    windows = window_slices(tuple(image_size), tuple(roi_size), overlap)
    if region is not None:
        windows = [w for w in windows if _intersects(w, region)]
    return sorted(windows, key=lambda w: tuple(sl.start for sl in reversed(w)))


def coarse_support(windows: Iterable[Window], coarse_size: Sequence[int]) -> tuple[slice, ...]:
    """The region of the coarser scale (half the size) that :func:`~monai_msgan.synthesis.streaming.upsampled_window`
    reads to make ``windows``: their bounding box halved, with its one-pixel margin."""
    lo = [math.inf] * len(coarse_size)
    hi = [-math.inf] * len(coarse_size)
    for w in windows:
        for d, (sl, n) in enumerate(zip(w, coarse_size)):
            lo[d] = min(lo[d], max(sl.start // 2 - 1, 0))
            hi[d] = max(hi[d], min(math.ceil(sl.stop / 2) + 1, n))
    if math.inf in lo:
        raise ValueError("no windows: the region is empty.")
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


class BlendingAccumulator:
    """Blends windows into ``region`` of an image, in a buffer one window deep along the last axis.

    Args:
        region: the part of the image to assemble (global coordinates, one slice per spatial dim).
        roi_size: window size.
        channels: channels of the windows.
        device: where the buffer lives (the windows are moved there).
        mode: ``"gaussian"`` or ``"constant"`` blending, as MONAI's ``compute_importance_map``.
        sigma_scale: Gaussian sigma relative to the window size.
    """

    def __init__(
        self,
        region: Sequence[slice],
        roi_size: Sequence[int],
        channels: int,
        device: torch.device | str = "cpu",
        mode: str = "gaussian",
        sigma_scale: float = 0.125,
    ) -> None:
        self.region = tuple(region)
        self.roi_size = tuple(roi_size)
        self.device = torch.device(device)
        self.length = self.region[-1].stop - self.region[-1].start
        self.plane = tuple(r.stop - r.start for r in self.region[:-1])
        self.capacity = min(self.roi_size[-1], self.length)
        weight = compute_importance_map(self.roi_size, mode=mode, sigma_scale=sigma_scale, device=self.device)
        self.weight = weight.to(torch.float32).reshape(1, *self.roi_size)
        self.acc = torch.zeros((channels, *self.plane, self.capacity), device=self.device)
        self.wsum = torch.zeros((1, *self.plane, self.capacity), device=self.device)
        self.lo = 0  # region-local index (last axis) of the first slab not yet handed out

    def local_start(self, window: Window) -> int:
        """Where ``window`` starts along the last axis, in region-local coordinates (clipped at 0)."""
        return max(window[-1].start - self.region[-1].start, 0)

    def add(self, window: Window, patch: torch.Tensor) -> None:
        """Blend ``patch`` (``(channels, *roi_size)``) of ``window``: its part inside the region, weighted."""
        buf, src = [], []
        for d, (w, r) in enumerate(zip(window, self.region)):
            a, b = max(w.start, r.start), min(w.stop, r.stop)
            shift = r.start + (self.lo if d == len(self.region) - 1 else 0)
            buf.append(slice(a - shift, b - shift))
            src.append(slice(a - w.start, b - w.start))
        weight = self.weight[(slice(None), *src)]
        self.acc[(slice(None), *buf)] += patch[(slice(None), *src)].to(self.device, torch.float32) * weight
        self.wsum[(slice(None), *buf)] += weight

    def flush(self, upto: int, sink: Callable[[torch.Tensor, int], None]) -> None:
        """Hand the finished slabs before region-local index ``upto`` to ``sink(slab, start)``; move the buffer on."""
        n = min(upto, self.length) - self.lo
        if n <= 0:
            return
        if n > self.capacity:
            raise RuntimeError(f"windows leave a gap: slabs {self.lo + self.capacity}..{upto} received no window.")
        sink(self.acc[..., :n] / self.wsum[..., :n], self.lo)
        keep = self.capacity - n
        if keep > 0:
            self.acc[..., :keep] = self.acc[..., n:].clone()
            self.wsum[..., :keep] = self.wsum[..., n:].clone()
        self.acc[..., keep:] = 0
        self.wsum[..., keep:] = 0
        self.lo += n


def assemble(
    windows: Sequence[Window],
    predict: Callable[[list[Window]], torch.Tensor],
    accumulator: BlendingAccumulator,
    sink: Callable[[torch.Tensor, int], None],
    batch_size: int = 4,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> None:
    """Run ``predict`` on ``windows`` (in the given order, ``batch_size`` at a time), blend the results and hand every
    finished slab of the accumulator's region to ``sink``, in order along the last axis and without gaps.

    Args:
        windows: the windows, ordered by start along the last axis (:func:`window_grid`).
        predict: maps a list of windows to a ``(len, channels, *roi_size)`` tensor.
        accumulator: the blending buffer (its region decides which part of each window is kept).
        sink: receives ``(channels, *plane, depth)`` float32 slabs and their region-local start.
        batch_size: windows per ``predict`` call.
        progress: optional wrapper of the batch iterator (e.g. ``tqdm``).
    """
    batches = [list(windows[i : i + batch_size]) for i in range(0, len(windows), batch_size)]
    for batch in batches if progress is None else progress(batches):
        out = predict(batch)
        for window, patch in zip(batch, out):
            accumulator.flush(accumulator.local_start(window), sink)  # no later window starts before this one
            accumulator.add(window, patch)
    accumulator.flush(accumulator.length, sink)


def into_tensor(out: torch.Tensor) -> Callable[[torch.Tensor, int], None]:
    """A sink that copies slabs into ``out`` along its last axis (asynchronously into pinned host memory)."""
    non_blocking = out.device.type == "cpu" and out.is_pinned()

    def sink(slab: torch.Tensor, start: int) -> None:
        out[..., start : start + slab.shape[-1]].copy_(slab, non_blocking=non_blocking)

    return sink


def redundancy(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> float:
    """How many times the windows compute each pixel of an image of ``image_size`` on average (1 = no overlap)."""
    windows = window_slices(tuple(image_size), tuple(roi_size), overlap)
    return len(windows) * math.prod(roi_size) / math.prod(image_size)
