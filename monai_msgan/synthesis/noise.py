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
batch or device asks for it. This is what makes sliding-window synthesis reproducible for any ``sw_batch_size``.

The image is tiled into fixed blocks (64² pixels in 2D, 16³ voxels in 3D); each block's noise is drawn on the CPU
from its own generator, seeded with a hash of (seed, stream, block index). A window gathers the blocks it overlaps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

__all__ = ["positional_noise", "block_seed", "BLOCK_ELEMENTS"]

#: About this many values per block and channel.
BLOCK_ELEMENTS = 4096
_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def block_seed(seed: int, stream: int, block: int) -> int:
    """The generator seed of one noise block (a 64-bit hash of the three numbers)."""
    return _splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (stream & _M64)) ^ (block & _M64))


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
        device: where the result goes (it is always drawn on the CPU, so every device gets the same values).
        dtype: floating point type of the result.

    Returns:
        tensor of shape ``(channels, *region_size)``.
    """
    nd = len(full_size)
    if region is None:
        region = [slice(0, s) for s in full_size]
    if len(region) != nd:
        raise ValueError(f"region has {len(region)} dims, full_size has {nd}.")
    block = max(1, round(BLOCK_ELEMENTS ** (1 / nd)))
    bounds = []
    for sl, size in zip(region, full_size):
        start, stop = int(sl.start or 0), int(size if sl.stop is None else sl.stop)
        if start < 0 or stop > size or stop <= start:
            raise ValueError(f"region {list(region)} lies outside the image of size {list(full_size)}.")
        bounds.append((start, stop))
    blocks_per_dim = [math.ceil(s / block) for s in full_size]
    first = [b[0] // block for b in bounds]
    last = [(b[1] - 1) // block for b in bounds]
    tile = torch.empty((channels, *[(lst - fst + 1) * block for fst, lst in zip(first, last)]))
    gen = torch.Generator()
    for idx in itertools.product(*[range(f, lst + 1) for f, lst in zip(first, last)]):
        linear = 0
        for i, n in zip(idx, blocks_per_dim):
            linear = linear * n + i
        gen.manual_seed(block_seed(seed, stream, linear))
        where = tuple(slice((i - f) * block, (i - f + 1) * block) for i, f in zip(idx, first))
        tile[(slice(None), *where)] = torch.randn((channels, *(block,) * nd), generator=gen)
    crop = tuple(slice(b[0] - f * block, b[1] - f * block) for b, f in zip(bounds, first))
    return tile[(slice(None), *crop)].to(device=device, dtype=dtype)
