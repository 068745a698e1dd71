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
"""The synthesis path before issue 12, kept unchanged as the benchmarks' baseline ("today").

Each patch scale runs through MONAI's ``SlidingWindowInferer``: the upsampled coarse image is made whole on the host,
windows are copied to the device one ``sw_batch_size`` at a time and (batch-invariant) through the network one by
one, their noise is drawn on the host from one ``torch.Generator`` per 4096-value block, and the windows are
blended on the host. Only the in-memory path is kept (the disk path assembled the same windows).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer

from monai_msgan.transforms.pyramid import upsample

__all__ = ["LegacySynthesizer", "block_noise"]

_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def block_noise(seed, stream, channels, full_size, region=None, device=None) -> torch.Tensor:
    """The old positional noise: 64² (2D) or 16³ (3D) blocks, each drawn on the CPU from a seeded generator."""
    nd = len(full_size)
    region = region or [slice(0, s) for s in full_size]
    block = max(1, round(4096 ** (1 / nd)))
    bounds = [(int(sl.start or 0), int(s if sl.stop is None else sl.stop)) for sl, s in zip(region, full_size)]
    per_dim = [math.ceil(s / block) for s in full_size]
    first = [b[0] // block for b in bounds]
    last = [(b[1] - 1) // block for b in bounds]
    tile = torch.empty((channels, *[(b - a + 1) * block for a, b in zip(first, last)]))
    gen = torch.Generator()
    for idx in itertools.product(*[range(a, b + 1) for a, b in zip(first, last)]):
        linear = 0
        for i, n in zip(idx, per_dim):
            linear = linear * n + i
        gen.manual_seed(_splitmix64(_splitmix64(_splitmix64(seed & _M64) ^ (stream & _M64)) ^ (linear & _M64)))
        where = tuple(slice((i - f) * block, (i - f + 1) * block) for i, f in zip(idx, first))
        tile[(slice(None), *where)] = torch.randn((channels, *(block,) * nd), generator=gen)
    crop = tuple(slice(b[0] - f * block, b[1] - f * block) for b, f in zip(bounds, first))
    return tile[(slice(None), *crop)].to(device=device)


class LegacySynthesizer:
    """The pre-issue-12 ``MultiScaleSynthesizer(...)(output_size, seed)`` (unconditional, float32, one-pass base)."""

    def __init__(self, generator, patch_size: Sequence[int], overlap=0.25, sw_batch_size=4, device="cpu") -> None:
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.patch_size = tuple(patch_size)
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size

    @torch.no_grad()
    def __call__(self, sizes: Sequence[Sequence[int]], seed: int = 0) -> torch.Tensor:
        """``sizes``: every scale's size, coarsest first (``MultiScaleSynthesizer.scale_sizes``)."""
        base = self.generator.base
        noise = block_noise(seed, 0, base.noise_channels, sizes[0], device=self.device)
        image = base(None, None, noise[None]).float().cpu()[0]
        for s in range(1, len(sizes)):
            image = self._patch_scale(s, upsample(image), seed, tuple(sizes[s]))
        return image

    def _patch_scale(self, scale, inputs, seed, size):
        net = self.generator.scale(scale)

        def predictor(window, locations):
            out = []
            for i, loc in enumerate(locations):
                noise = block_noise(seed, scale, net.noise_channels, size, region=loc[2:], device=self.device)
                out.append(net(window[i : i + 1].to(self.device), None, noise[None]).float().cpu())
            return torch.cat(out)

        inferer = SlidingWindowInferer(
            roi_size=self.patch_size,
            sw_batch_size=self.sw_batch_size,
            overlap=self.overlap,
            mode="gaussian",
            sigma_scale=0.125,
            sw_device=self.device,
            device=torch.device("cpu"),
            with_coord=True,
        )
        return inferer(inputs[None], predictor)[0]
