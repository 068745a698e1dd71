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
"""Normalisation modulated by a per-image latent code (adaptive instance normalisation)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LatentModulatedNorm", "LatentMapping"]


class LatentMapping(nn.Sequential):
    """A small MLP mapping a standard normal latent vector to the style code read by modulated normalisations.

    Args:
        latent_dim: size of the latent vector.
        style_dim: size of the style code.
        num_layers: linear layers (each followed by a leaky ReLU).
    """

    def __init__(self, latent_dim: int, style_dim: int, num_layers: int = 2) -> None:
        layers: list[nn.Module] = []
        d = latent_dim
        for _ in range(num_layers):
            layers += [nn.Linear(d, style_dim), nn.LeakyReLU(0.2)]
            d = style_dim
        super().__init__(*layers)


class LatentModulatedNorm(nn.Module):
    """Wraps a normalisation layer so that a per-image style code scales and shifts its output per channel.

    ``y = norm(x) * (1 + gamma(w)) + beta(w)``, with ``gamma`` and ``beta`` linear in the style code ``w`` and
    initialised to zero, so the wrapped network starts out exactly as it was. Instance normalisation removes every
    per-image, per-channel mean and scale from its input, so an image-wide variable (a patient's size, a film's
    exposure, a view angle) cannot pass through a U-Net made of such layers from its input alone; modulating the
    normalised features with a global code (adaptive instance normalisation, as in StyleGAN) gives it a way in.

    The style code is set on the module (:attr:`style`) by the owning network for each forward pass; without one,
    the layer behaves as the wrapped normalisation.

    Args:
        norm: the normalisation layer to wrap (its own affine parameters are kept).
        channels: its number of channels.
        style_dim: size of the style code.
    """

    def __init__(self, norm: nn.Module, channels: int, style_dim: int) -> None:
        super().__init__()
        self.norm = norm
        self.affine = nn.Linear(style_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)
        self.style: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.style is None:
            return self.norm(x)
        shape = (x.shape[0], -1, *([1] * (x.ndim - 2)))
        if _is_plain_instance_norm(self.norm):
            return self._modulated_instance_norm(x, shape)
        y = self.norm(x)
        gamma, beta = self.affine(self.style).to(y.dtype).chunk(2, dim=1)
        return y * (1 + gamma.reshape(shape)) + beta.reshape(shape)

    def _modulated_instance_norm(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Instance normalisation, its affine parameters and the modulation as one scale and shift per image and
        channel, applied in one pass: the same result as the layers one after the other (up to rounding), and it
        keeps ``x``'s memory layout (PyTorch's instance norm copies a channels-last input to channels-first and back,
        which took much of a CPU training step's time)."""
        norm = self.norm
        stats = x if x.dtype in (torch.float32, torch.float64) else x.float()  # statistics in float under autocast
        var, mean = torch.var_mean(stats, dim=tuple(range(2, x.ndim)), keepdim=True, correction=0)
        gamma, beta = self.affine(self.style).to(stats.dtype).chunk(2, dim=1)
        gain = 1 + gamma.reshape(shape)
        scale = gain * torch.rsqrt(var + norm.eps)
        shift = beta.reshape(shape)
        if norm.affine:
            per_channel = (1, -1, *([1] * (x.ndim - 2)))
            shift = shift + gain * norm.bias.to(stats.dtype).reshape(per_channel)
            scale = scale * norm.weight.to(stats.dtype).reshape(per_channel)
        return torch.addcmul((shift - mean * scale).to(x.dtype), x, scale.to(x.dtype))


def _is_plain_instance_norm(norm: nn.Module) -> bool:
    """An instance normalisation that always normalises with the instance's own statistics (no running stats)."""
    instance_norms = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)
    return isinstance(norm, instance_norms) and not norm.track_running_stats
