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
from __future__ import annotations

from monai_msgan.engines.coarse_degradation import degrade_coarse
from monai_msgan.engines.distributed import (
    DISTRIBUTED_MODES,
    DistributedMultiScaleTraining,
    RankShardSampler,
    RankSyncedAugment,
    assign_scales,
    distributed_seed,
)
from monai_msgan.engines.ema import GeneratorEMA
from monai_msgan.engines.multiscale_training import MultiScaleTraining
from monai_msgan.engines.scale_trainer import ScaleGanTrainer, resolve_amp_dtype

__all__ = [
    "DISTRIBUTED_MODES",
    "DistributedMultiScaleTraining",
    "GeneratorEMA",
    "MultiScaleTraining",
    "RankShardSampler",
    "RankSyncedAugment",
    "ScaleGanTrainer",
    "assign_scales",
    "degrade_coarse",
    "distributed_seed",
    "resolve_amp_dtype",
]
