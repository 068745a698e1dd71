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
"""A learned embedding of label classes, turning a map of class indices into feature channels."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LabelEmbedding"]


class LabelEmbedding(nn.Module):
    """Map a ``(B, 1, *spatial)`` map of class indices (integer values, any dtype) to ``(B, embedding_dim,
    *spatial)``: each class gets a learned vector (``nn.Embedding``), the same as a 1×1 convolution of the one-hot
    map without its ``num_classes`` channels ever being built.

    Args:
        num_classes: number of classes (indices ``0..num_classes-1``).
        embedding_dim: channels of the output.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        if num_classes < 2 or embedding_dim < 1:
            raise ValueError(f"need num_classes >= 2 and embedding_dim >= 1, got {num_classes}, {embedding_dim}.")
        self.num_classes = int(num_classes)
        self.embedding_dim = int(embedding_dim)
        self.embedding = nn.Embedding(self.num_classes, self.embedding_dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.ndim < 3 or labels.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, *spatial) map of class indices, got shape {tuple(labels.shape)}.")
        index = labels[:, 0].round().long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.num_classes):
            raise ValueError(
                f"class indices must be in 0..{self.num_classes - 1}, got {int(index.min())}..{int(index.max())}."
            )
        return self.embedding(index).movedim(-1, 1)
