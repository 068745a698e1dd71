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
"""Intensity windows: the views of a CT a radiologist switches between (air, lung, soft tissue, bone), as extra
discriminator input channels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["IntensityWindows", "hu_to_unit"]


def hu_to_unit(values, hu_window: Sequence[float]):
    """Map Hounsfield units (a number or nested sequences of numbers) to the model range ``[-1, 1]`` that the
    bundles' ``ScaleIntensityRanged`` maps ``hu_window`` to, e.g. for :class:`IntensityWindows` given in HU.

    Args:
        values: a number or (nested) sequences of numbers, in HU.
        hu_window: ``(low, high)`` HU mapped to -1 and 1.
    """
    low, high = float(hu_window[0]), float(hu_window[1])
    if not high > low:
        raise ValueError(f"hu_window must be (low, high) with high > low, got {tuple(hu_window)}.")
    if isinstance(values, (int, float)):
        return (float(values) - low) / (high - low) * 2.0 - 1.0
    return [hu_to_unit(v, hu_window) for v in values]


class IntensityWindows(nn.Module):
    """Appends a soft-windowed copy of the leading channels for each intensity window.

    A window ``(low, high)`` maps a value ``x`` to ``tanh((x - centre) / half_width)``: values inside the window
    spread over about ``[-0.76, 0.76]``, values outside saturate towards -1 or 1, and the gradient never vanishes
    exactly. On CT in a wide model range (e.g. -1024..3071 HU to ``[-1, 1]``), a 100 HU error in air is 0.05 of the
    range and easy for a discriminator to overlook; through an air window 150 HU wide it is more than one unit.
    Giving the discriminator the windows a reader uses lets it judge air, lungs, soft tissue and bone each at their
    own contrast, and so pushes the generator to get each of them right.

    Args:
        windows: ``(low, high)`` pairs in the input's units, ``low < high``.
        channels: leading channels that get windowed copies (the image, and the coarse image of a patch
            discriminator); None = all. Channels after them (e.g. label conditions) are passed through only.

    Output: ``(B, C + len(windows) * channels, *spatial)``: the input, then the windows of its first channel,
    then those of the next, and so on.
    """

    def __init__(self, windows: Sequence[Sequence[float]], channels: int | None = None) -> None:
        super().__init__()
        pairs = [tuple(float(v) for v in w) for w in windows]
        if not pairs:
            raise ValueError("windows must hold at least one (low, high) pair.")
        for w in pairs:
            if len(w) != 2 or not w[1] > w[0]:
                raise ValueError(f"each window must be (low, high) with high > low, got {w}.")
        if channels is not None and channels < 1:
            raise ValueError(f"channels must be None (all) or at least 1, got {channels}.")
        self.windows = pairs
        self.channels = channels
        self.register_buffer("centre", torch.tensor([(a + b) / 2 for a, b in pairs]), persistent=False)
        self.register_buffer("half_width", torch.tensor([(b - a) / 2 for a, b in pairs]), persistent=False)

    def _windowed(self, in_channels: int) -> int:
        return in_channels if self.channels is None else min(self.channels, in_channels)

    def extra_channels(self, in_channels: int) -> int:
        """Channels this module appends to an input of ``in_channels`` channels."""
        return self._windowed(in_channels) * len(self.windows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self._windowed(x.shape[1])
        shape = (1, 1, len(self.windows)) + (1,) * (x.ndim - 2)
        centre = self.centre.to(x.dtype).view(shape)
        half = self.half_width.to(x.dtype).view(shape)
        views = torch.tanh((x[:, :k].unsqueeze(2) - centre) / half)  # (B, k, W, *spatial)
        return torch.cat([x, views.flatten(1, 2)], dim=1)
