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
"""Base-scale generator: a MONAI U-Net that makes the whole low-resolution image from noise and/or a condition."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet
from torch import nn

__all__ = ["BaseGenerator"]


class BaseGenerator(nn.Module):
    """Generates the coarsest scale of the image in one pass.

    The input is the concatenation of optional condition channels (a sketch, edge map or label map at the base
    resolution) and ``noise_channels`` channels of standard normal noise. Without condition channels the network
    samples images from noise alone (unconditional mode, e.g. for synthetic datasets). Per-pixel noise carries no
    large-scale information, so with ``noise_downsample = k > 1`` the noise is first averaged over k×k blocks
    (rescaled to unit variance: a coarse latent grid) and upsampled back, giving the U-Net smooth noise from which
    it can lay out the global anatomy. The body is :class:`monai.networks.nets.BasicUNet` (four ×2 levels), by
    default with interpolation + convolution upsampling, which avoids the checkerboard artefacts of transposed
    convolutions; the output goes through ``tanh`` into the model range ``[-1, 1]``.

    All generators share the call signature ``(coarse, condition, noise) -> image``; the base has no coarser
    scale, so ``coarse`` must be ``None``.

    Args:
        spatial_dims: 2 or 3.
        out_channels: image channels.
        condition_channels: channels of the condition (0 = unconditional).
        noise_channels: channels of input noise (at least 1 when unconditional).
        features: BasicUNet feature channels: five encoder levels and the last decoder level (6 entries).
        upsample: BasicUNet upsampling, ``"nontrainable"`` (interpolation + convolution), ``"deconv"`` or
            ``"pixelshuffle"``.
        norm: normalisation layer (MONAI name or tuple); the base sees whole images, so instance norm is safe.
        act: activation (MONAI name or tuple).
        dropout: dropout probability inside the U-Net.
        noise_downsample: block size of the latent noise grid (1 = per-pixel noise); the base size must be
            divisible by it.
    """

    def __init__(
        self,
        spatial_dims: int,
        out_channels: int = 1,
        condition_channels: int = 0,
        noise_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256, 512, 32),
        upsample: str = "nontrainable",
        norm: str | tuple = ("instance", {"affine": True}),
        act: str | tuple = ("LeakyReLU", {"negative_slope": 0.2}),
        dropout: float = 0.0,
        noise_downsample: int = 1,
    ) -> None:
        super().__init__()
        if condition_channels < 0 or noise_channels < 0:
            raise ValueError("condition_channels and noise_channels must be non-negative.")
        if condition_channels + noise_channels == 0:
            raise ValueError("BaseGenerator needs an input: set noise_channels and/or condition_channels above 0.")
        if len(features) != 6:
            raise ValueError(f"features needs 6 entries (BasicUNet), got {len(features)}.")
        self.spatial_dims = spatial_dims
        self.out_channels = out_channels
        self.condition_channels = condition_channels
        self.noise_channels = noise_channels
        if noise_downsample < 1:
            raise ValueError(f"noise_downsample must be at least 1, got {noise_downsample}.")
        self.noise_downsample = int(noise_downsample)
        self.size_divisor = math.lcm(16, self.noise_downsample)  # BasicUNet halves the size four times
        self.unet = BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=condition_channels + noise_channels,
            out_channels=out_channels,
            features=tuple(features),
            act=act,
            norm=norm,
            dropout=dropout,
            upsample=upsample,
        )

    def forward(
        self,
        coarse: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Generate the base image; ``noise`` and ``condition`` are ``(B, C, *spatial)`` tensors."""
        if coarse is not None:
            raise ValueError("BaseGenerator is the coarsest scale: it takes no coarse input (pass coarse=None).")
        inputs = _gather_inputs(condition, self.condition_channels, noise, self.noise_channels)
        size = inputs.shape[2:]
        if any(s % self.size_divisor for s in size):
            raise ValueError(
                f"base image size {list(size)} must be divisible by {self.size_divisor} (16 for the U-Net's four "
                "levels, and noise_downsample)."
            )
        if math.prod(s // 16 for s in size) < 2:
            raise ValueError(
                f"base image size {list(size)} is too small: the U-Net's bottleneck would be a single pixel; "
                "make one side at least 32."
            )
        if noise is not None and self.noise_downsample > 1:
            noise = self.smooth_noise(noise)
            inputs = noise if condition is None else torch.cat([condition, noise], dim=1)
        return torch.tanh(self.unet(inputs))

    def smooth_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Average ``noise`` over ``noise_downsample`` blocks, rescale to unit variance and upsample back."""
        k, nd = self.noise_downsample, self.spatial_dims
        pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
        grid = pool(noise, k) * k ** (nd / 2)
        mode = "bilinear" if nd == 2 else "trilinear"
        return F.interpolate(grid, size=noise.shape[2:], mode=mode, align_corners=False)


def _gather_inputs(
    condition: torch.Tensor | None,
    condition_channels: int,
    noise: torch.Tensor | None,
    noise_channels: int,
    prefix: tuple[torch.Tensor, ...] = (),
) -> torch.Tensor:
    """Check channel counts and concatenate ``prefix``, condition and noise along the channel dim."""
    parts = list(prefix)
    for name, t, expected in (("condition", condition, condition_channels), ("noise", noise, noise_channels)):
        got = 0 if t is None else t.shape[1]
        if got != expected:
            raise ValueError(f"expected {expected} {name} channels, got {got}.")
        if t is not None:
            parts.append(t)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
