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
"""Patch generator of one finer scale: a ResNet built from MONAI blocks that refines an upsampled coarse patch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, ResidualUnit, UpSample
from torch import nn

from monai_msgan.networks.nets.base_generator import _gather_inputs, _label_embedding

__all__ = ["PatchGenerator"]


class PatchGenerator(nn.Module):
    """Generates a patch of scale ``s`` from the same patch of scale ``s - 1`` upsampled ×2.

    Input: the upsampled coarse patch (``out_channels`` channels), optional condition channels (sketch, edge or
    label map at this scale) and ``noise_channels`` channels of noise, concatenated. An encoder of strided
    convolutions, ``num_res_blocks`` residual units and a decoder of upsampling + convolution predict a residual
    that is added to the coarse patch, so an untrained network already returns the upsampled coarse image.

    The network is fully convolutional and, by default, has no normalisation layer: statistics computed per patch
    would make a patch's output depend on where the sliding window put it, and show up as seams.

    With ``coarse_input=False`` the network has no coarser scale to refine: it makes the patch from the condition
    and noise alone and returns ``tanh`` of its output. That is the common single-scale patch-based GAN, used as a
    baseline (scale 0 of a one-scale model, trained on random patches and synthesised window by window).

    Args:
        spatial_dims: 2 or 3.
        out_channels: image channels (also the channels of ``coarse``).
        condition_channels: channels of the condition (0 = none).
        noise_channels: channels of input noise (0 = deterministic refinement).
        channels: feature channels at full patch resolution; doubled at each downsampling.
        num_downsamples: strided convolutions in the encoder (the patch size must be divisible by 2**this).
        num_res_blocks: residual units at the lowest resolution.
        max_channels: cap on feature channels.
        norm: normalisation layer, None by default (see above).
        act: activation (MONAI name or tuple).
        coarse_input: refine an upsampled coarse patch (True) or generate from condition and noise only (False).
        label_embedding: ``(num_classes, embedding_dim)``: the condition is a one-channel map of class indices
            (``condition_channels`` 1), embedded by a learned :class:`LabelEmbedding`; None = used as it is.
    """

    def __init__(
        self,
        spatial_dims: int,
        out_channels: int = 1,
        condition_channels: int = 0,
        noise_channels: int = 1,
        channels: int = 32,
        num_downsamples: int = 2,
        num_res_blocks: int = 6,
        max_channels: int = 256,
        norm: str | tuple | None = None,
        act: str | tuple = ("LEAKYRELU", {"negative_slope": 0.2}),
        coarse_input: bool = True,
        label_embedding: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if condition_channels < 0 or noise_channels < 0 or num_downsamples < 0 or num_res_blocks < 0:
            raise ValueError("channel and block counts must be non-negative.")
        if not coarse_input and condition_channels + noise_channels == 0:
            raise ValueError("without coarse_input the generator needs condition and/or noise channels.")
        self.spatial_dims = spatial_dims
        self.out_channels = out_channels
        self.condition_channels = condition_channels
        self.noise_channels = noise_channels
        self.coarse_input = coarse_input
        self.size_divisor = 2**num_downsamples
        self.label_embedding = _label_embedding(label_embedding, condition_channels)
        self._embedded_channels = (
            condition_channels if self.label_embedding is None else self.label_embedding.embedding_dim
        )
        in_channels = (out_channels if coarse_input else 0) + self._embedded_channels + noise_channels

        def conv(cin: int, cout: int, **kw) -> Convolution:
            return Convolution(spatial_dims, cin, cout, kernel_size=3, act=act, norm=norm, **kw)

        layers: list[nn.Module] = [conv(in_channels, channels)]
        ch = channels
        for _ in range(num_downsamples):
            nxt = min(ch * 2, max_channels)
            layers.append(conv(ch, nxt, strides=2))
            ch = nxt
        for _ in range(num_res_blocks):
            layers.append(ResidualUnit(spatial_dims, ch, ch, subunits=2, act=act, norm=norm))
        interp = "bilinear" if spatial_dims == 2 else "trilinear"
        for _ in range(num_downsamples):
            nxt = max(ch // 2, channels)
            layers.append(
                UpSample(
                    spatial_dims, ch, ch, scale_factor=2, mode="nontrainable", interp_mode=interp, align_corners=False
                )
            )
            layers.append(conv(ch, nxt))
            ch = nxt
        layers.append(Convolution(spatial_dims, ch, out_channels, kernel_size=3, conv_only=True))
        self.body = nn.Sequential(*layers)
        # Start as the identity on the coarse image: the residual head begins at zero.
        last = layers[-1].conv
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(
        self,
        coarse: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refine ``coarse`` (the upsampled coarser scale, ``(B, out_channels, *patch)``); without
        ``coarse_input``, ``coarse`` must be None and the patch is made from ``condition`` and ``noise``."""
        if self.label_embedding is not None and condition is not None:
            condition = self.label_embedding(condition)
        if not self.coarse_input:
            if coarse is not None:
                raise ValueError("this PatchGenerator has coarse_input=False: pass coarse=None.")
            inputs = _gather_inputs(condition, self._embedded_channels, noise, self.noise_channels)
            self._check_size(inputs.shape[2:])
            return torch.tanh(self.body(inputs))
        if coarse is None or coarse.shape[1] != self.out_channels:
            got = None if coarse is None else coarse.shape[1]
            raise ValueError(
                f"PatchGenerator needs the upsampled coarse patch with {self.out_channels} channels, got {got}."
            )
        self._check_size(coarse.shape[2:])
        inputs = _gather_inputs(condition, self._embedded_channels, noise, self.noise_channels, prefix=(coarse,))
        return coarse + self.body(inputs)

    def _check_size(self, size) -> None:
        if any(s % self.size_divisor for s in size):
            raise ValueError(f"patch size {list(size)} must be divisible by {self.size_divisor} (2**num_downsamples).")
