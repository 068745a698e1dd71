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
"""Noise that is a function of position: the same seed gives the same value at a pixel or voxel, whichever window,
batch or device asks for it. This is what makes sliding-window synthesis reproducible for any ``sw_batch_size``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["positional_noise", "hash_uint32"]

_MASK = 0xFFFFFFFF
# Multipliers below 2**31, so every product of two 32-bit values fits a signed 64-bit integer without overflow.
_M1 = 0x7FEB352D
_M2 = 0x2C1B3C6D
_GOLDEN = 0x1E3779B9


def hash_uint32(x: torch.Tensor) -> torch.Tensor:
    """An integer hash (xor-shift-multiply rounds) of int64 tensors holding values in ``[0, 2**32)``."""
    x = x & _MASK
    x = ((x ^ (x >> 16)) * _M1) & _MASK
    x = ((x ^ (x >> 15)) * _M2) & _MASK
    x = ((x ^ (x >> 16)) * _M1) & _MASK
    return x ^ (x >> 15)


def _key(*values: int) -> torch.Tensor:
    k = torch.zeros((), dtype=torch.int64)
    for v in values:
        k = hash_uint32(k ^ ((int(v) * _GOLDEN) & _MASK) ^ (int(v) >> 32))
    return k


def positional_noise(
    seed: int,
    stream: int,
    channels: int,
    full_size: Sequence[int],
    region: Sequence[slice] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of an image of ``full_size``, evaluated on ``region`` only.

    Args:
        seed: the sample's seed.
        stream: tells independent noise fields of one sample apart (e.g. the scale index).
        channels: number of noise channels.
        full_size: spatial size of the whole image the noise belongs to.
        region: one slice per spatial dim (step 1) inside ``full_size``; None = the whole image.
        device: where the noise is computed.
        dtype: floating point type of the result.

    Returns:
        tensor of shape ``(channels, *region_size)``.
    """
    if region is None:
        region = [slice(0, s) for s in full_size]
    if len(region) != len(full_size):
        raise ValueError(f"region has {len(region)} dims, full_size has {len(full_size)}.")
    # Linear index of every element, built dim by dim: ((c * H + y) * W + x) ...
    index = torch.arange(channels, device=device, dtype=torch.int64)
    for sl, size in zip(region, full_size):
        start, stop = sl.start or 0, size if sl.stop is None else sl.stop
        if start < 0 or stop > size:
            raise ValueError(f"region {region} lies outside the image of size {list(full_size)}.")
        coords = torch.arange(start, stop, device=device, dtype=torch.int64)
        index = index[..., None] * size + coords
    key = _key(seed, stream).to(device)
    lo = index & _MASK
    hi = index >> 32
    h1 = hash_uint32(hash_uint32(lo ^ key) ^ hi)
    h2 = hash_uint32(h1 ^ (key * 3 & _MASK) ^ 0x5BD1E995)
    # 24-bit uniforms in (0, 1), then Box-Muller.
    u1 = ((h1 >> 8).to(torch.float32) + 0.5) / float(1 << 24)
    u2 = ((h2 >> 8).to(torch.float32) + 0.5) / float(1 << 24)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.to(dtype)
