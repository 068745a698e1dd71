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
"""Building blocks of the discriminators and their training: minibatch statistics, differentiable augmentation,
intensity windows, latent-modulated normalisation, label embedding."""

from __future__ import annotations

from monai_msgan.networks.blocks.diff_augment import AUGMENTATIONS, DiscriminatorAugment
from monai_msgan.networks.blocks.intensity_windows import IntensityWindows, hu_to_unit
from monai_msgan.networks.blocks.label_embedding import LabelEmbedding
from monai_msgan.networks.blocks.minibatch_std import MinibatchStdDev
from monai_msgan.networks.blocks.modulated_norm import LatentMapping, LatentModulatedNorm

__all__ = [
    "AUGMENTATIONS",
    "DiscriminatorAugment",
    "IntensityWindows",
    "LabelEmbedding",
    "LatentMapping",
    "LatentModulatedNorm",
    "MinibatchStdDev",
    "hu_to_unit",
]
