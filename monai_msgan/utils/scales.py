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
"""Geometry of the scale pyramid: which size each scale has, and checks that sizes fit it."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["SCALE_FACTOR", "scale_sizes", "ensure_size"]

#: Every scale doubles the resolution of the one below it.
SCALE_FACTOR = 2


def ensure_size(size: Sequence[int] | int, spatial_dims: int, name: str = "size") -> tuple[int, ...]:
    """Return ``size`` as a tuple of ``spatial_dims`` positive ints (an int is repeated).

    Raises:
        ValueError: when the number of entries or a value is wrong.
    """
    if isinstance(size, int):
        size = (size,) * spatial_dims
    out = tuple(int(s) for s in size)
    if len(out) != spatial_dims:
        raise ValueError(f"{name} must have {spatial_dims} entries for spatial_dims={spatial_dims}, got {list(size)}.")
    if any(s <= 0 for s in out):
        raise ValueError(f"{name} must be positive, got {list(out)}.")
    return out


def scale_sizes(output_size: Sequence[int], num_scales: int, min_base_divisor: int = 1) -> list[tuple[int, ...]]:
    """Spatial size of every scale, coarsest (scale 0, the base) first.

    Args:
        output_size: spatial size of the finest scale (the generated image).
        num_scales: number of scales, the base included (1 = base only).
        min_base_divisor: the base size must also be divisible by this (e.g. ``2**depth`` of the U-Net).

    Raises:
        ValueError: when ``output_size`` is not divisible by ``2**(num_scales-1) * min_base_divisor``.
    """
    if num_scales < 1:
        raise ValueError(f"num_scales must be at least 1, got {num_scales}.")
    factor = SCALE_FACTOR ** (num_scales - 1)
    divisor = factor * min_base_divisor
    bad = [s for s in output_size if s % divisor]
    if bad:
        raise ValueError(
            f"output size {list(output_size)} must be divisible by {divisor} "
            f"({num_scales} scales of x{SCALE_FACTOR} and a base divisible by {min_base_divisor}); "
            f"for example {[max(divisor, (s // divisor) * divisor) for s in output_size]}."
        )
    return [tuple(s // SCALE_FACTOR ** (num_scales - 1 - k) for s in output_size) for k in range(num_scales)]
