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
"""Sliding-window assembly that streams the result out slab by slab along the last spatial axis.

The windows and blending weights are MONAI's (``dense_patch_slices`` with the same scan interval as
``SlidingWindowInferer``, ``compute_importance_map``). Windows are visited in order of their start along the last
axis; once no remaining window can touch a slab, the slab is normalised by its summed weights and handed to a sink
(e.g. a NIfTI file being written). The host keeps only the coarser scale and a rolling buffer about one window deep,
so an output of any size can be written with bounded memory.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from monai.data.utils import compute_importance_map, dense_patch_slices

from monai_msgan.transforms.pyramid import upsample

__all__ = ["window_slices", "upsampled_window", "stream_windows"]


def window_slices(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> list[tuple[slice, ...]]:
    """The windows ``SlidingWindowInferer`` visits for this size (no padding: the image is at least the window)."""
    interval = [r if r == s else max(int(r * (1 - overlap)), 1) for r, s in zip(roi_size, image_size)]
    return dense_patch_slices(image_size, roi_size, interval)


def upsampled_window(coarse: torch.Tensor, window: Sequence[slice]) -> torch.Tensor:
    """The region ``window`` of ``upsample(coarse)``, computed from a crop of ``coarse`` with a one-pixel margin;
    equal to cropping the upsampled whole image, without ever making it."""
    crop, inner = [], []
    for sl, size in zip(window, coarse.shape[1:]):
        lo = max(sl.start // 2 - 1, 0)
        hi = min(math.ceil(sl.stop / 2) + 1, size)
        crop.append(slice(lo, hi))
        inner.append(slice(sl.start - 2 * lo, sl.stop - 2 * lo))
    return upsample(coarse[(slice(None), *crop)])[(slice(None), *inner)]


def stream_windows(
    image_size: Sequence[int],
    roi_size: Sequence[int],
    overlap: float,
    predict: Callable[[list[tuple[slice, ...]]], torch.Tensor],
    sink: Callable[[torch.Tensor, int], None],
    out_channels: int,
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    sw_batch_size: int = 4,
) -> None:
    """Assemble an image of ``image_size`` from overlapping windows, handing finished slabs to ``sink``.

    Args:
        image_size: spatial size of the result.
        roi_size: window size.
        overlap: window overlap fraction.
        predict: maps a list of window slices to a ``(len, out_channels, *roi_size)`` CPU tensor.
        sink: called as ``sink(slab, start)`` with ``(out_channels, *image_size[:-1], depth)`` float32 slabs that
            cover the last axis from ``start``, in order and without gaps.
        out_channels: channels of the result.
        mode: ``"gaussian"`` or ``"constant"`` blending, as MONAI's.
        sigma_scale: Gaussian sigma relative to the window size.
        sw_batch_size: windows per ``predict`` call.
    """
    image_size, roi_size = tuple(image_size), tuple(roi_size)
    weight = compute_importance_map(roi_size, mode=mode, sigma_scale=sigma_scale, device="cpu", dtype=torch.float32)
    weight = weight.reshape(1, *roi_size)
    windows = sorted(window_slices(image_size, roi_size, overlap), key=lambda w: w[-1].start)
    plane = image_size[:-1]
    depth = roi_size[-1]
    lo = 0  # last-axis index of the first slab not yet written
    acc = torch.zeros((out_channels, *plane, 0))
    wsum = torch.zeros((1, *plane, 0))

    def flush(upto: int) -> None:
        nonlocal lo, acc, wsum
        n = upto - lo
        if n <= 0:
            return
        sink(acc[..., :n] / wsum[..., :n], lo)
        acc, wsum, lo = acc[..., n:].clone(), wsum[..., n:].clone(), upto

    for start, group in itertools.groupby(windows, key=lambda w: w[-1].start):
        group = list(group)
        flush(start)  # nothing later starts below `start`
        need = start + depth - lo - acc.shape[-1]
        if need > 0:
            acc = torch.cat([acc, acc.new_zeros((out_channels, *plane, need))], dim=-1)
            wsum = torch.cat([wsum, wsum.new_zeros((1, *plane, need))], dim=-1)
        for b in range(0, len(group), sw_batch_size):
            batch = group[b : b + sw_batch_size]
            out = predict(batch)
            for w, patch in zip(batch, out):
                region = (slice(None), *w[:-1], slice(w[-1].start - lo, w[-1].stop - lo))
                acc[region] += patch * weight
                wsum[region] += weight
    flush(image_size[-1])
