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
"""Metrics for generated images: SWD, seam visibility, paired fidelity, diversity, intensity fidelity, feature
distances."""

from __future__ import annotations

from monai_msgan.metrics.evaluation import GenerationEvaluation
from monai_msgan.metrics.features import FeatureDistances
from monai_msgan.metrics.intensity import (
    QUANTILES,
    body_mask,
    body_solidity,
    intensity_distance,
    intensity_quantiles,
    outside_body_air,
)
from monai_msgan.metrics.labels import label_statistics
from monai_msgan.metrics.seams import grid_lines, seam_score
from monai_msgan.metrics.similarity import paired_fidelity, pairwise_diversity
from monai_msgan.metrics.swd import SlicedWassersteinDistance, laplacian_pyramid, sliced_wasserstein

__all__ = [
    "FeatureDistances",
    "GenerationEvaluation",
    "SlicedWassersteinDistance",
    "QUANTILES",
    "grid_lines",
    "intensity_distance",
    "intensity_quantiles",
    "label_statistics",
    "laplacian_pyramid",
    "paired_fidelity",
    "body_mask",
    "body_solidity",
    "outside_body_air",
    "pairwise_diversity",
    "seam_score",
    "sliced_wasserstein",
]
