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
"""Patch discriminator with the options a GAN on few images needs: minibatch statistics, spectral norm, no
batch norm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution
from torch import nn

from monai_msgan.networks.blocks.intensity_windows import IntensityWindows
from monai_msgan.networks.blocks.minibatch_std import MinibatchStdDev
from monai_msgan.utils.memory_format import channels_last_format

__all__ = ["PatchDiscriminator", "pack_samples"]


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """Each run of ``pack`` consecutive samples of ``x`` ``(B, C, *spatial)`` stacked along the channels:
    ``(B / pack, pack * C, *spatial)``, sample ``i * pack + j`` in channels ``j * C`` to ``(j + 1) * C - 1`` of
    pack ``i`` (PacGAN's packing); ``pack`` 1 returns ``x`` itself.

    Raises:
        ValueError: when ``B`` is not a multiple of ``pack``.
    """
    if pack == 1:
        return x
    if pack < 1 or x.shape[0] % pack:
        raise ValueError(f"cannot pack a batch of {x.shape[0]} samples in packs of {pack}.")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


class PatchDiscriminator(nn.Module):
    """A PatchGAN discriminator (pix2pix layout, as MONAI's :class:`monai.networks.nets.PatchDiscriminator`) for 2D
    and 3D, returning one logit per receptive field.

    ``initial conv (stride 2) -> num_layers_d convs (stride 2, the last stride 1) -> [minibatch std] -> final conv``.
    Compared with MONAI's network it adds the options that matter when few real images are available:

    - ``minibatch_std``: a :class:`~monai_msgan.networks.blocks.MinibatchStdDev` layer before the final
      convolution, so that a batch of identical fakes (mode collapse) is easy to reject;
    - ``spectral_norm``: spectral normalisation of every convolution (a Lipschitz bound that keeps D smooth);
    - ``norm`` defaults to none: batch norm mixes the statistics of a real-only and a fake-only batch, which both
      leaks batch identity and spoils per-sample gradient penalties such as R1;
    - ``pack``: the network judges ``pack`` images at once (PacGAN, Lin et al. 2018): each run of ``pack``
      consecutive images of the batch is stacked along the channels after the intensity windows, giving one logit
      map per pack. Real packs hold different images; a generator that makes one image for every noise gives packs
      of identical ones, which the discriminator can then reject, where judging images one by one it cannot see
      collapse at all. The batch must be a multiple of ``pack`` (the trainer passes real and fake batches
      separately, so packs never mix the two).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (image plus any conditioning channels).
        channels: features of the first layer, doubled at each further layer up to ``max_channels``.
        num_layers_d: convolutions between the first and the final one.
        kernel_size: kernel size of all but the final convolution.
        norm: normalisation of the inner layers (MONAI name or tuple), None for none.
        act: activation (MONAI name or tuple).
        minibatch_std: group size of the minibatch standard deviation layer (0 = off).
        minibatch_std_channels: statistics channels that layer appends.
        spectral_norm: spectral normalisation of every convolution.
        max_channels: cap on feature channels.
        input_windows: ``(low, high)`` intensity windows in the input's units (for CT in HU:
            :func:`~monai_msgan.networks.blocks.hu_to_unit`); None or empty = none.
        window_channels: leading input channels that get the windows (image, and coarse image for a patch
            discriminator); None = all.
        initial_norm: normalisation of the initial convolution; None (the default, as pix2pix and MONAI) for
            none. Instance norm there ("instance", what this network had up to CT bundle 0.4.1 and X-ray bundle
            0.5.0) divides out each patch's mean level and contrast before the discriminator sees them: a uniform
            patch of hazy air 100 HU too bright looks the same as real air.
        pack: images judged at once, stacked along channels (1 = each image on its own); ``in_channels`` stays
            the channels of one image.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        channels: int = 64,
        num_layers_d: int = 3,
        kernel_size: int = 4,
        norm: str | tuple | None = None,
        act: str | tuple = ("LEAKYRELU", {"negative_slope": 0.2}),
        minibatch_std: int = 0,
        minibatch_std_channels: int = 1,
        spectral_norm: bool = False,
        max_channels: int = 512,
        input_windows: Sequence[Sequence[float]] | None = None,
        window_channels: int | None = None,
        initial_norm: str | tuple | None = None,
        pack: int = 1,
    ) -> None:
        super().__init__()
        if num_layers_d < 1:
            raise ValueError(f"num_layers_d must be at least 1, got {num_layers_d}.")
        if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
            raise ValueError(f"pack must be a whole number of at least 1, got {pack!r}.")
        if minibatch_std < 0:
            raise ValueError(f"minibatch_std must be 0 (off) or a group size of at least 2, got {minibatch_std}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.pack = pack
        padding = (kernel_size - 1) // 2
        self.windows = IntensityWindows(input_windows, window_channels) if input_windows else None
        first_in = pack * (in_channels + (self.windows.extra_channels(in_channels) if self.windows is not None else 0))
        layers: list[nn.Module] = [
            Convolution(
                spatial_dims,
                first_in,
                channels,
                strides=2,
                kernel_size=kernel_size,
                padding=padding,
                act=act,
                norm=initial_norm,
            )
        ]
        ch = channels
        for i in range(num_layers_d):
            nxt = min(ch * 2, max_channels)
            stride = 1 if i == num_layers_d - 1 else 2
            layers.append(
                Convolution(
                    spatial_dims, ch, nxt, strides=stride, kernel_size=kernel_size, padding=padding, act=act, norm=norm
                )
            )
            ch = nxt
        self.features = nn.Sequential(*layers)
        self.minibatch_std = MinibatchStdDev(minibatch_std, minibatch_std_channels) if minibatch_std else None
        extra = minibatch_std_channels if minibatch_std else 0
        self.final_conv = Convolution(spatial_dims, ch + extra, 1, kernel_size=3, padding=1, conv_only=True)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                if spectral_norm:
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B / pack, 1, *patches)`` for ``(B, in_channels, *spatial)`` inputs."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}.")
        if x.shape[0] % self.pack:
            raise ValueError(
                f"this discriminator judges packs of {self.pack} images: a batch of {x.shape[0]} is not a multiple of "
                "it (set batch_size, or batch_size x patches_per_image on patch scales, to a multiple of the pack)."
            )
        if self.windows is not None:
            x = self.windows(x)
        if self.pack > 1:
            x = pack_samples(x, self.pack)
            weight = self.features[0].conv.weight
            layout = channels_last_format(weight.ndim)
            if layout is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=layout):
                x = x.contiguous(memory_format=layout)  # the reshape made a channels-last input channels-first
        h = self.features(x)
        if self.minibatch_std is not None:
            h = self.minibatch_std(h)
        return self.final_conv(h)
