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
"""Fixtures of the MONAI Label integration test: a studies folder from the demo data and tiny model folders.

The test runs only with ``MSGAN_TEST_MONAILABEL=1`` (``make test-monailabel`` sets it and uses the app's own
environment, ``.venv-monailabel``); ``make test`` skips it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "apps" / "monailabel_msgan"

#: Demo images copied (downsampled) into the studies folder; all but the last get a drawn sketch as their label.
STUDY_IMAGES = ["drr_-10deg", "drr_+0deg", "drr_+10deg", "RG1_UNCR"]
#: Size of the studies' images: not square and not the models' size, so geometry has to be handled.
STUDY_SIZE = (80, 96)

#: A tiny 2D model (64x64, two scales) layered on the quick configuration, so training takes seconds on a CPU.
TINY_2D = {
    "image_size": [64, 64],
    "num_scales": 2,
    "patch_size": [32, 32],
    "base_features": [8, 8, 16, 16, 16, 8],
    "base_noise_channels": 4,
    "base_latent_channels": 4,
    "patch_channels": 8,
    "patch_max_channels": 16,
    "disc_channels": 8,
    "base_disc_layers": 2,
    "patch_disc_layers": 2,
    "num_iterations": [6, 6],
    "batch_size": 2,
    "patches_per_image": 2,
    "save_interval": 3,
    "log_interval": 2,
    "preview_interval": 6,
    "sw_batch_size": 2,
}


#: A tiny 3D model (64^3 at 5 mm, two scales: the base U-Net needs 32^3) layered on the CT bundle's quick configuration.
TINY_3D = {
    "image_size": [64, 64, 64],
    "spacing": [5.0, 5.0, 5.0],
    "num_scales": 2,
    "patch_size": [16, 16, 16],
    "base_features": [4, 4, 8, 8, 8, 4],
    "base_noise_channels": 4,
    "base_latent_channels": 4,
    "patch_channels": 4,
    "patch_max_channels": 8,
    "disc_channels": 4,
    "base_disc_layers": 2,
    "patch_disc_layers": 2,
    "num_iterations": [4, 4],
    "batch_size": 1,
    "patches_per_image": 2,
    "save_interval": 2,
    "log_interval": 2,
    "preview_interval": 4,
    "sw_batch_size": 2,
}
#: The CT study: the demo CT downsampled about 10x (int16 HU), labelled with its body mask.
CT_STUDY = "ct_demo"
#: The same volume without a label, for the label-map model's error.
CT_UNLABELLED = "ct_demo_unlabelled"
CT_STUDY_SIZE = (36, 36, 33)


def make_ct_study(ct_dir: Path, out: Path) -> Path:
    """A downsampled copy of the demo CT (int16 HU, geometry scaled to the new grid) and its body mask (HU > -500)
    as its final label, and the same volume without a label, in the studies folder ``out``."""
    import nibabel as nib
    import torch
    from monai.transforms import Resize

    src = nib.load(str(next((ct_dir / "images").glob("*.nii.gz"))))
    data = np.asarray(src.dataobj, dtype=np.float32)
    small = Resize(CT_STUDY_SIZE, mode="area")(torch.from_numpy(data)[None])[0].numpy()
    affine = src.affine.copy()
    affine[:, :3] = affine[:, :3] * (np.array(data.shape) / np.array(CT_STUDY_SIZE))[None, :]
    nib.save(nib.Nifti1Image(np.round(small).astype(np.int16), affine), str(out / f"{CT_STUDY}.nii.gz"))
    nib.save(nib.Nifti1Image(np.round(small).astype(np.int16), affine), str(out / f"{CT_UNLABELLED}.nii.gz"))
    mask = (small > -500).astype(np.uint8)
    nib.save(nib.Nifti1Image(mask, affine), str(out / "labels" / "final" / f"{CT_STUDY}.nii.gz"))
    return out


def make_studies(demo_dir: Path, out: Path) -> Path:
    """Downsampled copies of demo images (NIfTI, with their own geometry scaled to the new grid) and, for all but the
    last, a final label: the image's edge map, as an annotator's sketch."""
    import nibabel as nib
    import torch
    from monai.transforms import Resize

    from monai_msgan.transforms import EdgeMap

    labels = out / "labels" / "final"
    labels.mkdir(parents=True)
    for i, name in enumerate(STUDY_IMAGES):
        src = nib.load(str(demo_dir / "images" / f"{name}.nii.gz"))
        data = np.asarray(src.dataobj, dtype=np.float32)
        small = Resize(STUDY_SIZE, mode="area")(torch.from_numpy(data)[None])
        affine = src.affine.copy()
        affine[:, :2] = affine[:, :2] * (np.array(data.shape[:2]) / np.array(STUDY_SIZE))[None, :]
        nib.save(nib.Nifti1Image(small[0].numpy(), affine), str(out / f"{name}.nii.gz"))
        if i < len(STUDY_IMAGES) - 1:
            sketch = EdgeMap(sigma=1.0, quantile=0.85)(small * 2 - 1)[0].numpy().astype(np.uint8)
            nib.save(nib.Nifti1Image(sketch, affine), str(labels / f"{name}.nii.gz"))
    return out


def _demo(variable: str, default: str, make: str) -> Path:
    path = Path(os.environ.get(variable, REPO_ROOT / "data" / default))
    if not (path / "datalist.json").is_file():
        pytest.fail(f"no demo data in {path}: run {make} (or set {variable}).")
    return path


@pytest.fixture(scope="module")
def demo_dir() -> Path:
    return _demo("MSGAN_XRAY_DEMO", "xray_demo", "make demo-data")


@pytest.fixture(scope="module")
def ct_demo_dir() -> Path:
    return _demo("MSGAN_CT_DEMO", "ct_demo", "make data/ct_demo/datalist.json")
