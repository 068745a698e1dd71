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
"""Channels-last memory layout of networks and batches.

PyTorch's oneDNN convolutions on CPU, and cuDNN's with mixed precision, run faster on channels-last tensors (the
channels of a voxel next to each other in memory), markedly so for the backward pass of 3D convolutions; other
layers (normalisation, upsampling) may run slower there. The layout does not change what a network computes, only
the order of its floating-point sums, so a model trained either way loads either way.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["channels_last_format", "to_channels_last", "module_to_channels_last"]


def channels_last_format(ndim: int) -> torch.memory_format | None:
    """The channels-last layout of a tensor of ``ndim`` dimensions: ``channels_last`` for 4 (2D images and
    convolution weights), ``channels_last_3d`` for 5 (3D), None for the rest (which have no such layout)."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(int(ndim))


def to_channels_last(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in its channels-last layout (a copy only when it is not in it already); tensors of other ranks
    are returned as they are."""
    memory_format = channels_last_format(tensor.ndim)
    return tensor if memory_format is None else tensor.contiguous(memory_format=memory_format)


def module_to_channels_last(module: nn.Module) -> nn.Module:
    """Convert ``module``'s 4D and 5D parameters and buffers (convolution weights of 2D and 3D layers) to their
    channels-last layout in place, keeping the parameter objects (optimisers built on them stay valid).

    Unlike ``module.to(memory_format=...)``, which takes one layout for every 4D and 5D tensor, each tensor gets the
    layout of its own rank, so this works for networks of any ``spatial_dims``. Returns ``module``.
    """
    return module._apply(to_channels_last)
