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
"""Exponential moving average of a generator's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["GeneratorEMA"]


class GeneratorEMA(nn.Module):
    """A copy of a network whose weights follow the trained ones as an exponential moving average.

    GAN generators oscillate around a good solution from step to step; the average of their recent weights gives
    markedly better and more stable samples (Karras et al., ProGAN/StyleGAN; Yazıcı et al. 2019). The average's
    half-life is ``half_life`` iterations, ramped up as ``min(half_life, rampup * iteration)`` so that the early,
    random weights are forgotten quickly (StyleGAN2-ADA's schedule, counted in iterations here). Buffers are copied,
    not averaged.

    The averaged network is :attr:`module`; it is what a trained scale exports as ``generator.pt``. Being a module,
    its state goes into checkpoints like any network's.

    Args:
        model: the trained network (copied once; the copy is kept in ``eval`` mode and never receives gradients).
        half_life: half-life of the average in iterations (0 = the copy simply follows the weights).
        rampup: the half-life ramps up as ``rampup`` times the iteration (None = no ramp-up).
    """

    def __init__(self, model: nn.Module, half_life: float = 100.0, rampup: float | None = 0.05) -> None:
        super().__init__()
        if half_life < 0:
            raise ValueError(f"half_life must be non-negative, got {half_life}.")
        if rampup is not None and rampup <= 0:
            raise ValueError(f"rampup must be positive or None, got {rampup}.")
        self.half_life = float(half_life)
        self.rampup = rampup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    def beta(self, iteration: int) -> float:
        """Weight of the old average after ``iteration`` (1-based) training iterations."""
        half_life = self.half_life
        if self.rampup is not None:
            half_life = min(half_life, self.rampup * iteration)
        if half_life <= 0:
            return 0.0
        return 0.5 ** (1.0 / half_life)

    @torch.no_grad()
    def update(self, model: nn.Module, iteration: int) -> None:
        """Move the average towards ``model``'s current weights."""
        beta = self.beta(iteration)
        for avg, cur in zip(self.module.parameters(), model.parameters()):
            avg.copy_(cur.detach().lerp(avg, beta))
        for avg, cur in zip(self.module.buffers(), model.buffers()):
            avg.copy_(cur)

    def train(self, mode: bool = True) -> GeneratorEMA:  # the average is always used for inference
        super().train(False)
        return self

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
