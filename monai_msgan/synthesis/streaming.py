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
"""Windows of sliding-window synthesis and their coarse inputs.

The windows are MONAI's (``dense_patch_slices`` with the same scan interval as ``SlidingWindowInferer``); the
engine that runs and blends them is :mod:`monai_msgan.synthesis.assembly`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.data.utils import dense_patch_slices

from monai_msgan.transforms.pyramid import upsample

__all__ = ["window_slices", "upsampled_window"]


def window_slices(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> list[tuple[slice, ...]]:
    """The windows ``SlidingWindowInferer`` visits for this size (no padding: the image is at least the window)."""
    interval = [r if r == s else max(int(r * (1 - overlap)), 1) for r, s in zip(roi_size, image_size)]
    return dense_patch_slices(image_size, roi_size, interval)


def upsampled_window(
    coarse: torch.Tensor,
    window: Sequence[slice],
    origin: Sequence[int] | None = None,
    full_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """The region ``window`` of ``upsample(coarse)``, computed from a crop of ``coarse`` with a one-pixel margin;
    equal to cropping the upsampled whole image, without ever making it.

    ``coarse`` may be a region of the coarse image: ``origin`` is then its first pixel in the whole coarse image of
    ``full_size`` (it must hold the crop, see :func:`~monai_msgan.synthesis.assembly.coarse_support`)."""
    full_size = coarse.shape[1:] if full_size is None else full_size
    origin = [0] * len(full_size) if origin is None else origin
    crop, inner = [], []
    for sl, size, o in zip(window, full_size, origin):
        lo = max(sl.start // 2 - 1, 0)
        hi = min(math.ceil(sl.stop / 2) + 1, size)
        crop.append(slice(lo - o, hi - o))
        inner.append(slice(sl.start - 2 * lo, sl.stop - 2 * lo))
    return upsample(coarse[(slice(None), *crop)])[(slice(None), *inner)]
