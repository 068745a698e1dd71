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
"""Sliced Wasserstein distance between image sets on Laplacian-pyramid patches (as used to evaluate ProGAN)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["laplacian_pyramid", "patch_descriptors", "sliced_wasserstein", "SlicedWassersteinDistance"]

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial blur of ``(B, C, *spatial)`` with reflected borders."""
    nd = x.ndim - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    channels = x.shape[1]
    for d in range(nd):
        shape = [1] * nd
        shape[d] = 5
        kernel = _BINOMIAL.to(x).reshape(1, 1, *shape).repeat(channels, 1, *([1] * nd))
        pad = [0, 0] * nd
        pad[2 * (nd - 1 - d)] = pad[2 * (nd - 1 - d) + 1] = 2
        x = conv(F.pad(x, pad, mode="reflect"), kernel, groups=channels)
    return x


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of ``(B, C, *spatial)`` images, finest level first; the last level is the low-pass residual.

    Each band is the image minus its blurred, downsampled and re-upsampled version.
    """
    out, current = [], images.float()
    for _ in range(levels - 1):
        low = _blur(current)[(slice(None), slice(None)) + (slice(None, None, 2),) * (current.ndim - 2)]
        up = F.interpolate(low, size=current.shape[2:], mode="bilinear" if current.ndim == 4 else "trilinear")
        out.append(current - _blur(up))
        current = low
    out.append(current)
    return out


def patch_descriptors(
    level: torch.Tensor, patch_size: int, num_patches: int, generator: torch.Generator
) -> torch.Tensor:
    """``num_patches`` random ``patch_size``-wide neighbourhoods per image, flattened: ``(B * num_patches, D)``."""
    spatial = level.shape[2:]
    if any(s < patch_size for s in spatial):
        raise ValueError(f"pyramid level of size {list(spatial)} is smaller than the descriptor patch ({patch_size}).")
    out = []
    for img in level:
        starts = [torch.randint(0, s - patch_size + 1, (num_patches,), generator=generator) for s in spatial]
        for k in range(num_patches):
            region = tuple(slice(int(st[k]), int(st[k]) + patch_size) for st in starts)
            out.append(img[(slice(None), *region)].reshape(-1))
    return torch.stack(out)


def _quantile_w1(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
    """Exact 1-Wasserstein distance per column between two sorted samples of any sizes ``(n_a, P)``, ``(n_b, P)``.

    The integral of ``|F_a^-1(t) - F_b^-1(t)|`` over ``t`` in ``(0, 1]``: both quantile functions are steps, constant
    between the merged breakpoints ``k / n_a`` and ``k / n_b``.
    """
    na, nb = pa.shape[0], pb.shape[0]
    if na == nb:
        return (pa - pb).abs().mean(0)
    steps = [torch.arange(1, n + 1, dtype=torch.float64) / n for n in (na, nb)]
    t = torch.cat(steps)
    t = torch.unique(t)  # sorted breakpoints, the last is 1
    widths = torch.diff(t, prepend=t.new_zeros(1))
    mids = t - widths / 2
    ia = (mids * na).floor().long().clamp(max=na - 1)
    ib = (mids * nb).floor().long().clamp(max=nb - 1)
    return ((pa[ia] - pb[ib]).abs() * widths.to(pa.dtype)[:, None]).sum(0)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, num_projections: int, generator: torch.Generator) -> float:
    """Mean over random unit directions of the 1D Wasserstein-1 distance between the projected point sets.

    ``a`` and ``b`` may hold different numbers of points: every point of both sets counts (the distance between
    their empirical distributions, not between their first ``min(len(a), len(b))`` points).
    """
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError(f"sliced_wasserstein needs points in both sets, got {a.shape[0]} and {b.shape[0]}.")
    dirs = torch.randn(a.shape[1], num_projections, generator=generator)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa = torch.sort(a @ dirs, dim=0).values
    pb = torch.sort(b @ dirs, dim=0).values
    return float(_quantile_w1(pa, pb).mean())


class SlicedWassersteinDistance:
    """SWD between a real and a generated image set, per Laplacian pyramid level (finest first).

    Descriptors are random ``patch_size``-wide neighbourhoods of every level, normalised per level with the mean and
    standard deviation of the *real* descriptors (so both sets are measured in the same units); the distance of a level
    is the sliced Wasserstein distance between the two descriptor sets. Identical sets give 0; the value grows as
    the local statistics at that scale differ. Works for 2D and 3D images.

    Args:
        levels: pyramid levels.
        patch_size: descriptor neighbourhood width (7 in ProGAN).
        patches_per_image: descriptors drawn from each image and level.
        num_projections: random directions.
        seed: seed of patch positions and directions (the same for both sets).
    """

    def __init__(
        self,
        levels: int = 4,
        patch_size: int = 7,
        patches_per_image: int = 128,
        num_projections: int = 512,
        seed: int = 0,
    ) -> None:
        self.levels = levels
        self.patch_size = patch_size
        self.patches_per_image = patches_per_image
        self.num_projections = num_projections
        self.seed = seed

    def __call__(
        self, real: torch.Tensor | Sequence[torch.Tensor], fake: torch.Tensor | Sequence[torch.Tensor]
    ) -> list[float]:
        """SWD per level for ``(B, C, *spatial)`` batches (or sequences of ``(C, *spatial)`` images)."""
        real = torch.stack(list(real)) if not isinstance(real, torch.Tensor) else real
        fake = torch.stack(list(fake)) if not isinstance(fake, torch.Tensor) else fake
        if real.shape[1:] != fake.shape[1:]:
            raise ValueError(
                f"real images {tuple(real.shape[1:])} and generated {tuple(fake.shape[1:])} differ in shape."
            )
        out = []
        pyr_r, pyr_f = laplacian_pyramid(real, self.levels), laplacian_pyramid(fake, self.levels)
        for lvl, (lr, lf) in enumerate(zip(pyr_r, pyr_f)):
            g = torch.Generator().manual_seed(self.seed + lvl)
            dr = patch_descriptors(lr, self.patch_size, self.patches_per_image, g)
            g = torch.Generator().manual_seed(self.seed + lvl)
            df = patch_descriptors(lf, self.patch_size, self.patches_per_image, g)
            mean, std = dr.mean(0, keepdim=True), dr.std(0, keepdim=True).clamp_min(1e-8)
            g = torch.Generator().manual_seed(self.seed + 1000 + lvl)
            out.append(sliced_wasserstein((dr - mean) / std, (df - mean) / std, self.num_projections, g))
        return out
