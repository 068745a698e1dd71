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
"""Minibatch standard deviation: lets a discriminator see how much the samples of a batch differ."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MinibatchStdDev"]


class MinibatchStdDev(nn.Module):
    """Appends the batch's feature spread as extra channels (as in ProGAN/StyleGAN discriminators).

    The batch is split into groups of ``group_size`` samples; within each group the standard deviation of every
    feature at every position is averaged over features (per ``num_channels`` feature groups) and positions, and
    broadcast back as ``num_channels`` constant channels to each sample of the group. A generator that collapses to
    one output gives groups with (near) zero spread, which the discriminator then learns to reject.

    Works for any number of spatial dimensions.

    Args:
        group_size: samples per group; the batch size is used when it is smaller or not divisible by it.
        num_channels: statistics channels appended (the features are split into this many groups).
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1) -> None:
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size must be at least 2, got {group_size}.")
        if num_channels < 1:
            raise ValueError(f"num_channels must be at least 1, got {num_channels}.")
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        if c % self.num_channels:
            raise ValueError(f"{c} feature channels cannot be split into {self.num_channels} groups.")
        g = self.group_size if b % self.group_size == 0 else b
        if g < 2:  # a single sample has no spread: append zeros (the statistic of a collapsed batch)
            return torch.cat([x, x.new_zeros((b, self.num_channels, *spatial))], dim=1)
        y = x.float().reshape(g, b // g, self.num_channels, c // self.num_channels, *spatial)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (b/g, n, c/n, *spatial)
        y = y.flatten(2).mean(dim=2)  # (b/g, n)
        y = y.repeat(g, 1).to(x.dtype)  # sample i belongs to group i % (b/g)
        y = y.reshape(b, self.num_channels, *([1] * len(spatial))).expand(b, self.num_channels, *spatial)
        return torch.cat([x, y], dim=1)
