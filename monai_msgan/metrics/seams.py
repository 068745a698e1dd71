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
"""How visible the patch grid of sliding-window synthesis is in an image."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from monai_msgan.synthesis.streaming import window_slices

__all__ = ["grid_lines", "seam_score"]


def grid_lines(image_size: Sequence[int], patch_size: Sequence[int], overlap: float) -> list[set[int]]:
    """Per axis, the positions where a synthesis window starts or ends (the borders between which blending happens)."""
    lines: list[set[int]] = [set() for _ in image_size]
    for window in window_slices(image_size, patch_size, overlap):
        for d, sl in enumerate(window):
            for p in (sl.start, sl.stop):
                if 0 < p < image_size[d]:
                    lines[d].add(p)
    return lines


def seam_score(image: torch.Tensor, patch_size: Sequence[int] | int, overlap: float = 0.25, margin: int = 2) -> float:
    """Mean absolute intensity step across the patch grid's lines, divided by the same statistic between pixels at
    least ``margin`` away from any line.

    Along each axis the step between pixels ``p - 1`` and ``p`` is taken at the grid positions ``p`` (where a
    window starts or ends) and, for the reference, at the positions not within ``margin`` of one. About 1 means the
    grid leaves no trace; seams raise it (a planted step of a few grey levels along the lines gives well above 1.5).

    Args:
        image: ``(C, *spatial)`` image (2D or 3D).
        patch_size: synthesis window size.
        overlap: synthesis window overlap.
        margin: pixels next to a line excluded from the reference.
    """
    image = torch.as_tensor(image, dtype=torch.float32)
    spatial = tuple(image.shape[1:])
    nd = len(spatial)
    patch = (patch_size,) * nd if isinstance(patch_size, int) else tuple(patch_size)
    lines = grid_lines(spatial, patch, overlap)
    on_sum = on_n = off_sum = off_n = 0.0
    for d in range(nd):
        diff = (image.narrow(d + 1, 1, spatial[d] - 1) - image.narrow(d + 1, 0, spatial[d] - 1)).abs()
        per_pos = diff.transpose(0, d + 1).reshape(spatial[d] - 1, -1)  # step before position p+1, by p
        on = sorted(p - 1 for p in lines[d])
        near = {q - 1 for p in lines[d] for q in range(p - margin, p + margin + 1)}
        off = [i for i in range(spatial[d] - 1) if i not in near]
        if on:
            on_sum += float(per_pos[on].sum())
            on_n += per_pos[on].numel()
        if off:
            off_sum += float(per_pos[off].sum())
            off_n += per_pos[off].numel()
    if on_n == 0 or off_n == 0 or off_sum == 0:
        raise ValueError(f"no grid lines (or no variation off them) for size {list(spatial)} and patch {list(patch)}.")
    return (on_sum / on_n) / (off_sum / off_n)
