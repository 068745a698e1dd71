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

from monai_msgan.transforms.edges import EdgeMap, EdgeMapD, EdgeMapd, EdgeMapDict, gradient_magnitude
from monai_msgan.transforms.labels import (
    LABEL_ENCODINGS,
    LabelEncode,
    LabelEncodeD,
    LabelEncoded,
    LabelEncodeDict,
    LabelRemap,
    LabelRemapD,
    LabelRemapd,
    LabelRemapDict,
)
from monai_msgan.transforms.patches import (
    RandScalePatch,
    RandScalePatchD,
    RandScalePatchd,
    RandScalePatchDict,
    ScaleTrainingInputs,
    ScaleTrainingInputsD,
    ScaleTrainingInputsd,
    ScaleTrainingInputsDict,
)
from monai_msgan.transforms.pyramid import (
    ScalePyramid,
    ScalePyramidD,
    ScalePyramidd,
    ScalePyramidDict,
    downsample,
    upsample,
)

__all__ = [
    "EdgeMap",
    "EdgeMapd",
    "EdgeMapD",
    "EdgeMapDict",
    "LABEL_ENCODINGS",
    "LabelEncode",
    "LabelEncoded",
    "LabelEncodeD",
    "LabelEncodeDict",
    "LabelRemap",
    "LabelRemapd",
    "LabelRemapD",
    "LabelRemapDict",
    "RandScalePatch",
    "RandScalePatchd",
    "RandScalePatchD",
    "RandScalePatchDict",
    "ScalePyramid",
    "ScalePyramidd",
    "ScalePyramidD",
    "ScalePyramidDict",
    "ScaleTrainingInputs",
    "ScaleTrainingInputsd",
    "ScaleTrainingInputsD",
    "ScaleTrainingInputsDict",
    "downsample",
    "gradient_magnitude",
    "upsample",
]
