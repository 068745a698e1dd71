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
"""The scale pyramid: exact ×2 antialiased (area) downsampling and the matching ×2 upsampling."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_tensor

from monai_msgan.utils.scales import SCALE_FACTOR

__all__ = [
    "downsample",
    "upsample",
    "ScalePyramid",
    "ScalePyramidd",
    "ScalePyramidD",
    "ScalePyramidDict",
]

DOWNSAMPLE_MODES = ("area", "nearest")


def _batched(x: torch.Tensor, fn, spatial_dims: int | None) -> torch.Tensor:
    """Apply ``fn`` to a ``(B, C, *spatial)`` tensor; channel-first ``(C, *spatial)`` inputs get a batch dim."""
    x = convert_to_tensor(x, track_meta=False)
    if spatial_dims is None:
        spatial_dims = x.ndim - 1
    if x.ndim == spatial_dims + 1:
        return fn(x[None], spatial_dims)[0]
    if x.ndim == spatial_dims + 2:
        return fn(x, spatial_dims)
    raise ValueError(
        f"expected a (C, *spatial) or (B, C, *spatial) tensor with {spatial_dims} spatial dims, got {tuple(x.shape)}."
    )


def downsample(x: torch.Tensor, mode: str = "area", spatial_dims: int | None = None) -> torch.Tensor:
    """Halve every spatial size of ``x``.

    ``"area"`` averages each 2×2(×2) block, an antialiased (box-filtered) downsampling for intensities and
    sketches, for which the mean of a fine region equals the coarse pixel exactly. ``"nearest"`` keeps one
    sample per block, for label maps. Spatial sizes must be even.

    Args:
        x: ``(C, *spatial)`` or ``(B, C, *spatial)``.
        mode: ``"area"`` or ``"nearest"``.
        spatial_dims: number of spatial dims; default: ``x.ndim - 1`` (channel-first, no batch).
    """
    if mode not in DOWNSAMPLE_MODES:
        raise ValueError(f"mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}.")

    def fn(t: torch.Tensor, nd: int) -> torch.Tensor:
        odd = [s for s in t.shape[2:] if s % SCALE_FACTOR]
        if odd:
            raise ValueError(f"cannot halve spatial size {list(t.shape[2:])}: every size must be even.")
        if mode == "nearest":
            return t[(slice(None), slice(None)) + (slice(None, None, SCALE_FACTOR),) * nd].clone()
        pool = F.avg_pool2d if nd == 2 else F.avg_pool3d if nd == 3 else F.avg_pool1d
        dtype = t.dtype
        out = pool(t.float() if not t.is_floating_point() else t, SCALE_FACTOR)
        return out if out.dtype == dtype or not dtype.is_floating_point else out.to(dtype)

    return _batched(x, fn, spatial_dims)


def upsample(x: torch.Tensor, spatial_dims: int | None = None) -> torch.Tensor:
    """Double every spatial size of ``x`` with (bi/tri)linear interpolation (``align_corners=False``).

    This is how a scale's output becomes the next scale's coarse input, in training and in synthesis alike.
    """

    def fn(t: torch.Tensor, nd: int) -> torch.Tensor:
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[nd]
        return F.interpolate(t.float(), scale_factor=SCALE_FACTOR, mode=mode, align_corners=False)

    return _batched(x, fn, spatial_dims)


class ScalePyramid(Transform):
    """Build the scale pyramid of a channel-first image: a list, coarsest first, of ``num_scales`` images, each
    half the size of the next; the last is the input itself.

    Args:
        num_scales: number of scales, the input included.
        mode: ``"area"`` (antialiased, for images) or ``"nearest"`` (for label maps).
    """

    def __init__(self, num_scales: int, mode: str = "area") -> None:
        if num_scales < 1:
            raise ValueError(f"num_scales must be at least 1, got {num_scales}.")
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}.")
        self.num_scales = num_scales
        self.mode = mode

    def __call__(self, img: Any) -> list[torch.Tensor]:
        level = convert_to_tensor(img, track_meta=False)
        factor = SCALE_FACTOR ** (self.num_scales - 1)
        if any(s % factor for s in level.shape[1:]):
            raise ValueError(
                f"image size {list(level.shape[1:])} must be divisible by {factor} to build {self.num_scales} scales; "
                "resize or pad it first (e.g. Resized + SpatialPadd)."
            )
        levels = [level]
        for _ in range(self.num_scales - 1):
            level = downsample(level, self.mode)
            levels.append(level)
        return levels[::-1]


class ScalePyramidd(MapTransform):
    """Dictionary version of :class:`ScalePyramid`: writes scale ``s`` of ``key`` to ``key_pattern.format(key, s)``.

    Args:
        keys: keys of the images to build pyramids of.
        num_scales: number of scales, the input included.
        mode: one mode for all keys, or one per key.
        key_pattern: name of each level; ``{key}`` and ``{scale}`` are filled in.
        allow_missing_keys: don't raise when a key is absent.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_scales: int,
        mode: str | Sequence[str] = "area",
        key_pattern: str = "{key}_scale{scale}",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        modes = [mode] * len(self.keys) if isinstance(mode, str) else list(mode)
        if len(modes) != len(self.keys):
            raise ValueError(f"got {len(modes)} modes for {len(self.keys)} keys.")
        self.pyramids = [ScalePyramid(num_scales, m) for m in modes]
        self.key_pattern = key_pattern

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, pyramid in self.key_iterator(d, self.pyramids):
            for s, level in enumerate(pyramid(d[key])):
                d[self.key_pattern.format(key=key, scale=s)] = level
        return d


ScalePyramidD = ScalePyramidDict = ScalePyramidd
