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
batch, region or device asks for it. This is what makes sliding-window synthesis reproducible for any
``sw_batch_size`` and lets a region of an image be generated on its own.

Every value is computed where it is needed (on the GPU too) by a counter-based generator: a 32-bit integer hash
(a murmur3-style finaliser in ``int64`` tensor arithmetic, masked to 32 bits and never overflowing, so exact on
every device) of (seed, stream, channel, global coordinates) gives two uniform integers per value, which Box–Muller
turns into a standard normal in float64 before rounding to the result's type. The integers are identical on every
device; the normals are too, up to the last bit of float64 ``log``/``cos`` (float32 results have not been seen to
differ).
Nothing depends on the image's size, so a value at a position does not change when the image is cut or extended.

Since version 0.3 (issue 12) this replaces per-block CPU generators: the same seed gives different images than
before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["positional_noise", "window_noise", "hash32", "mix_key"]

_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1


def _hash32_int(x: int) -> int:
    """:func:`hash32` on a Python int (for the scalar key)."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (murmur3-style finaliser) of an ``int64`` tensor of values in ``[0, 2**32)``, computed
    with ``int64`` operations that never overflow, so it is exact on every device; the result is in ``[0, 2**32)``."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    # 0x846CA68B * x may pass 2**63: multiply by its two 16-bit halves so that no int64 product overflows
    x = (x * 0xA68B + (((x * 0x846C) & 0xFFFF) << 16)) & _M32
    return x ^ (x >> 16)


def mix_key(seed: int, stream: int, channel: int) -> int:
    """The 32-bit key of one noise field: a hash chain of the seed's two 32-bit halves, the stream and the channel."""
    seed &= _M64
    key = _hash32_int(seed & _M32)
    key = _hash32_int(key ^ (seed >> 32))
    key = _hash32_int(key ^ (stream & _M32))
    return _hash32_int(key ^ (channel & _M32))


def positional_noise(
    seed: int,
    stream: int,
    channels: int,
    full_size: Sequence[int],
    region: Sequence[slice] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise of an image of ``full_size``, evaluated on ``region`` only, computed on ``device``.

    Args:
        seed: the sample's seed.
        stream: tells independent noise fields of one sample apart (e.g. the scale index).
        channels: number of noise channels.
        full_size: spatial size of the whole image the noise belongs to (only checked against ``region``: a value
            depends on its coordinates, not on the image's size).
        region: one slice per spatial dim (step 1) inside ``full_size``; None = the whole image.
        device: where the noise is computed and returned (same values on every device).
        dtype: floating point type of the result.

    Returns:
        tensor of shape ``(channels, *region_size)``.
    """
    nd = len(full_size)
    if region is None:
        region = [slice(0, s) for s in full_size]
    if len(region) != nd:
        raise ValueError(f"region has {len(region)} dims, full_size has {nd}.")
    bounds = []
    for sl, size in zip(region, full_size):
        start, stop = int(sl.start or 0), int(size if sl.stop is None else sl.stop)
        if start < 0 or stop > size or stop <= start:
            raise ValueError(f"region {list(region)} lies outside the image of size {list(full_size)}.")
        bounds.append((start, stop))
    starts = torch.tensor([[b[0] for b in bounds]], dtype=torch.int64)
    return window_noise(seed, stream, channels, starts, [b[1] - b[0] for b in bounds], device, dtype)[0]


def window_noise(
    seed: int,
    stream: int,
    channels: int,
    starts: torch.Tensor | Sequence[Sequence[int]],
    size: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The noise of :func:`positional_noise` for a batch of equally sized windows, in one computation on ``device``.

    Args:
        seed: the sample's seed.
        stream: the noise field (e.g. the scale index).
        channels: number of noise channels.
        starts: ``(B, spatial_dims)`` global coordinates of the windows' first pixels.
        size: the windows' spatial size.
        device: where the noise is computed and returned.
        dtype: floating point type of the result.

    Returns:
        tensor of shape ``(B, channels, *size)``.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    starts = torch.as_tensor(starts, dtype=torch.int64).to(device)
    nd = len(size)
    if starts.ndim != 2 or starts.shape[1] != nd:
        raise ValueError(f"starts must have shape (B, {nd}), got {list(starts.shape)}.")
    keys = torch.tensor([mix_key(seed, stream, c) for c in range(channels)], dtype=torch.int64, device=device)
    h = keys.reshape(1, channels, *(1,) * nd)
    for d, n in enumerate(size):
        coord = starts[:, d : d + 1] + torch.arange(n, dtype=torch.int64, device=device)  # (B, n)
        shape = [starts.shape[0], 1] + [1] * nd
        shape[d + 2] = n
        # the coordinate is spread over 32 bits before mixing, so neighbouring positions share no bit pattern
        h = hash32(h ^ ((coord * 0x9E3779B1) & _M32).reshape(shape))
    u1 = (hash32(h ^ 0x68E31DA4) + 1).double() * 2.0**-32  # (0, 1]
    u2 = hash32(h ^ 0xB5297A4D).double() * 2.0**-32  # [0, 1)
    del h
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)).to(dtype)
