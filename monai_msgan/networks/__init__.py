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
"""Networks of every scale, the discriminator and the blocks of the training recipe (minibatch statistics,
differentiable augmentation). MONAI's own discriminators (:class:`monai.networks.nets.PatchDiscriminator`,
:class:`monai.networks.nets.MultiScalePatchDiscriminator`) work with the trainer too."""

from __future__ import annotations

from monai_msgan.networks.blocks import (
    DiscriminatorAugment,
    IntensityWindows,
    LabelEmbedding,
    MinibatchStdDev,
    hu_to_unit,
)
from monai_msgan.networks.nets import BaseGenerator, MultiScaleGenerator, PatchDiscriminator, PatchGenerator

__all__ = [
    "BaseGenerator",
    "DiscriminatorAugment",
    "IntensityWindows",
    "LabelEmbedding",
    "MinibatchStdDev",
    "MultiScaleGenerator",
    "PatchDiscriminator",
    "PatchGenerator",
    "hu_to_unit",
]
