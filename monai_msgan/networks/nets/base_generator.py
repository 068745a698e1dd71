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

from monai_msgan.networks.blocks.label_embedding import LabelEmbedding
from monai_msgan.networks.blocks.modulated_norm import LatentMapping, LatentModulatedNorm

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
    convolutions; the output goes through ``tanh`` into the model range ``[-1, 1]``, or, with
    ``output_activation="clamp"``, is clamped to it with a straight-through gradient: values at the ends of the range
    (air in CT, the black background of a radiograph, both exactly -1 after windowing) are then as easy to produce
    as any other, where ``tanh`` approaches them only asymptotically (within 50 HU of air needs a pre-activation
    below about -2.2).

    With ``latent_channels = L > 0``, the last ``L`` of the noise channels carry a per-image latent code instead
    of spatial noise: each is reduced to one standard normal number (its mean over the image times the square root
    of the number of pixels, which is exactly standard normal for i.i.d. standard normal noise, as drawn in training
    and by :func:`~monai_msgan.synthesis.noise.positional_noise`). A mapping MLP turns that vector into a style code
    that scales and shifts the output of every instance normalisation of the U-Net
    (:class:`~monai_msgan.networks.blocks.LatentModulatedNorm`). Instance normalisation removes image-wide
    statistics, so without such a path the generator can hardly make image-wide choices (size, exposure, view)
    and tends to produce one image for every seed (mode collapse). ``noise_channels`` counts both kinds.

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
        latent_channels: how many of the ``noise_channels`` carry the per-image latent code (0 = none).
        output_activation: ``"tanh"`` or ``"clamp"`` (see above).
        style_dim: size of the style code the latent is mapped to.
        label_embedding: ``(num_classes, embedding_dim)``: the condition is a one-channel map of class indices
            (``condition_channels`` 1), which a learned :class:`LabelEmbedding` turns into ``embedding_dim``
            channels before the U-Net; None = the condition goes in as it is (e.g. one-hot labels, a sketch).
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
        latent_channels: int = 0,
        style_dim: int = 64,
        output_activation: str = "tanh",
        label_embedding: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if condition_channels < 0 or noise_channels < 0:
            raise ValueError("condition_channels and noise_channels must be non-negative.")
        if not 0 <= latent_channels <= noise_channels:
            raise ValueError(f"latent_channels must be in 0..noise_channels ({noise_channels}), got {latent_channels}.")
        if condition_channels + noise_channels - latent_channels == 0:
            raise ValueError(
                "BaseGenerator needs a spatial input: set condition_channels and/or noise_channels above "
                "latent_channels."
            )
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
        self.latent_channels = int(latent_channels)
        if output_activation not in ("tanh", "clamp"):
            raise ValueError(f"output_activation must be 'tanh' or 'clamp', got {output_activation!r}.")
        self.output_activation = output_activation
        self.label_embedding = _label_embedding(label_embedding, condition_channels)
        embedded = condition_channels if self.label_embedding is None else self.label_embedding.embedding_dim
        self.unet = BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=embedded + noise_channels - self.latent_channels,
            out_channels=out_channels,
            features=tuple(features),
            act=act,
            norm=norm,
            dropout=dropout,
            upsample=upsample,
        )
        self.mapping: LatentMapping | None = None
        self._modulated: list[LatentModulatedNorm] = []
        if self.latent_channels:
            self.mapping = LatentMapping(self.latent_channels, style_dim)
            self._modulate_norms(style_dim)

    def _modulate_norms(self, style_dim: int) -> None:
        """Wrap every normalisation layer of the U-Net in a :class:`LatentModulatedNorm`."""
        norm_types = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm)
        for parent in list(self.unet.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, norm_types):
                    channels = getattr(child, "num_features", None) or getattr(child, "num_channels", None)
                    wrapped = LatentModulatedNorm(child, int(channels), style_dim)
                    setattr(parent, name, wrapped)
                    self._modulated.append(wrapped)
        if not self._modulated:
            raise ValueError("latent_channels needs normalisation layers in the U-Net to modulate (set norm).")

    def latent(self, noise: torch.Tensor) -> torch.Tensor:
        """The per-image latent vector ``(B, latent_channels)`` carried by the last noise channels."""
        z = noise[:, noise.shape[1] - self.latent_channels :].flatten(2)
        return z.mean(dim=2) * math.sqrt(z.shape[2])

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
        style = None
        if noise is not None and self.latent_channels:
            style = self.mapping(self.latent(noise).float())
            noise = noise[:, : noise.shape[1] - self.latent_channels]
            noise = noise if noise.shape[1] else None
        if noise is not None and self.noise_downsample > 1:
            noise = self.smooth_noise(noise)
        if self.label_embedding is not None:
            condition = self.label_embedding(condition)
        parts = [t for t in (condition, noise) if t is not None]
        inputs = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        for m in self._modulated:
            m.style = style
        try:
            out = self.unet(inputs)
            if self.output_activation == "tanh":
                return torch.tanh(out)
            return out + (out.clamp(-1.0, 1.0) - out).detach()  # clamp forward, identity gradient
        finally:
            for m in self._modulated:
                m.style = None

    def sample_noise(
        self,
        batch_size: int,
        spatial_size: Sequence[int],
        device: str | torch.device | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> torch.Tensor:
        """Noise of shape ``(batch_size, noise_channels, *spatial_size)`` for :meth:`forward`, drawn only as finely as
        the network reads it: the network's output has the same distribution as for i.i.d. standard normal noise.

        The network reads its spatial noise through :meth:`smooth_noise` (one standard normal number per
        ``noise_downsample`` block) and its latent channels through :meth:`latent` (one standard normal number per
        image and channel). Here those numbers are drawn directly and spread over their blocks (scaled so that the
        block mean times the square root of the block size gives them back), instead of drawing every voxel and
        averaging: in training that is most of the noise's cost (a 32³ base with 40 noise channels draws 2.6 million
        normal numbers per batch of two, where the network reads 4,096 of them). Synthesis keeps drawing per-voxel
        noise (:func:`~monai_msgan.synthesis.positional_noise`, reproducible from the seed and position), which has
        the same effect on the output in distribution.

        Args:
            batch_size: images in the batch.
            spatial_size: the base image size.
            device: where to put the noise.
            memory_format: layout of the returned tensor (e.g. ``torch.channels_last_3d``).
        """
        if self.noise_channels == 0:
            raise ValueError("this generator takes no noise (noise_channels 0).")
        size = [int(s) for s in spatial_size]
        if len(size) != self.spatial_dims:
            raise ValueError(f"spatial_size needs {self.spatial_dims} entries, got {list(spatial_size)}.")
        k = self.noise_downsample
        if any(s % k for s in size):
            raise ValueError(f"spatial_size {size} must be divisible by noise_downsample {k}.")
        noise = torch.empty((batch_size, self.noise_channels, *size), device=device, memory_format=memory_format)
        spatial = self.noise_channels - self.latent_channels
        if spatial:
            if k == 1:
                noise[:, :spatial] = torch.randn((batch_size, spatial, *size), device=device)
            else:
                grid = torch.randn((batch_size, spatial, *[s // k for s in size]), device=device) / k ** (
                    self.spatial_dims / 2
                )
                # each grid value over its k x ... x k block, as a view: (B, C, g1, 1, g2, 1, ...) expanded to k
                blocks = grid.reshape(batch_size, spatial, *[d for g in grid.shape[2:] for d in (g, 1)])
                blocks = blocks.expand(batch_size, spatial, *[d for g in grid.shape[2:] for d in (g, k)])
                noise[:, :spatial] = blocks.reshape(batch_size, spatial, *size)
        if self.latent_channels:
            z = torch.randn((batch_size, self.latent_channels), device=device) / math.sqrt(math.prod(size))
            noise[:, spatial:] = z.reshape(batch_size, self.latent_channels, *[1] * len(size))
        return noise

    def smooth_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Average ``noise`` over ``noise_downsample`` blocks, rescale to unit variance and upsample back."""
        k, nd = self.noise_downsample, self.spatial_dims
        pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
        grid = pool(noise, k) * k ** (nd / 2)
        mode = "bilinear" if nd == 2 else "trilinear"
        return F.interpolate(grid, size=noise.shape[2:], mode=mode, align_corners=False)


def _label_embedding(label_embedding: Sequence[int] | None, condition_channels: int) -> LabelEmbedding | None:
    """The :class:`LabelEmbedding` of a generator's ``label_embedding`` option (None when off)."""
    if label_embedding is None:
        return None
    if len(label_embedding) != 2:
        raise ValueError(f"label_embedding must be (num_classes, embedding_dim), got {list(label_embedding)}.")
    if condition_channels != 1:
        raise ValueError(
            f"label_embedding needs a one-channel condition of class indices (condition_channels 1), got "
            f"condition_channels {condition_channels}."
        )
    return LabelEmbedding(int(label_embedding[0]), int(label_embedding[1]))


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
