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
"""Conditioning augmentation for the patch scales: the coarse input a patch generator trains on, made as imperfect
as a generated one.

A patch scale trains on the real image one scale down, but at synthesis it is fed the coarser scale's *generated*
output, with that scale's errors (a grey haze where there should be air, blotches of the wrong intensity). Trained
only on clean inputs, it copies those errors to its output. Degrading the coarse input during training, while the
L1 and adversarial targets stay the real image, teaches it to correct them instead (the conditioning augmentation
of cascaded generators, Ho et al. 2021, applied here to a GAN cascade)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from monai_msgan.utils.memory_format import channels_last_format, to_channels_last

__all__ = ["degrade_coarse"]


def degrade_coarse(coarse: torch.Tensor, strength: float, cell: int = 4) -> torch.Tensor:
    """``coarse`` plus smooth random intensity deviations, of a random strength per sample.

    The deviation is Gaussian noise drawn on a grid ``cell`` times coarser than ``coarse`` (at least one point a
    side) and interpolated (bi/trilinearly) to its size, so it varies slowly across the image like a generated
    coarse scale's errors, not from pixel to pixel; each sample's deviation is scaled by its own standard deviation,
    drawn uniformly from ``[0, strength]``, so some samples stay nearly clean.

    Args:
        coarse: ``(B, C, *spatial)`` with 2 or 3 spatial dimensions, in model units.
        strength: the largest standard deviation of the deviation, in model units (0 returns ``coarse`` itself).
        cell: how many pixels a side one grid point of the deviation spans.

    Returns:
        the degraded coarse input, of the dtype and memory format of ``coarse``; no gradient flows to the noise.
    """
    if strength < 0:
        raise ValueError(f"strength must be non-negative, got {strength}.")
    if strength == 0:
        return coarse
    spatial = coarse.shape[2:]
    if len(spatial) not in (2, 3):
        raise ValueError(f"coarse must have 2 or 3 spatial dimensions, got shape {tuple(coarse.shape)}.")
    grid = [max(1, s // max(1, int(cell))) for s in spatial]
    noise = torch.randn((coarse.shape[0], coarse.shape[1], *grid), device=coarse.device, dtype=torch.float32)
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    noise = F.interpolate(noise, size=tuple(spatial), mode=mode, align_corners=False)
    sigma = torch.rand((coarse.shape[0],) + (1,) * (coarse.ndim - 1), device=coarse.device) * strength
    degraded = (coarse.float() + sigma * noise).to(coarse.dtype)
    channels_last = coarse.is_contiguous(memory_format=channels_last_format(coarse.ndim)) and not coarse.is_contiguous()
    return to_channels_last(degraded) if channels_last else degraded
