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
"""Tiny shared fixtures of the bad-input and fault-injection suite (each built once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_msgan.networks import BaseGenerator, MultiScaleGenerator, PatchGenerator
from monai_msgan.utils import generator_path, save_weights
from tests.conftest import REPO_ROOT

SCRIPTS = REPO_ROOT / "data_scripts"


def tiny_generator(spatial_dims: int = 2) -> MultiScaleGenerator:
    """Two scales of the smallest networks: a base U-Net (32 px base) and one patch generator."""
    torch.manual_seed(0)
    return MultiScaleGenerator(
        BaseGenerator(spatial_dims, features=(4, 4, 8, 8, 8, 4), noise_downsample=2),
        lambda: PatchGenerator(spatial_dims, channels=4, num_res_blocks=1),
        num_scales=2,
    )


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries (our .<name>.<pid>.*.tmp* names) anywhere under folder."""
    return sorted(str(p) for p in Path(folder).rglob(".*") if ".tmp" in p.name)


def dead_pid() -> int:
    """The id of a process that has exited (for stale temporaries of a kill -9)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fail_with(code: int):
    """An OSError with code (ENOSPC, EACCES, EROFS) as a real write would raise it."""
    return OSError(code, os.strerror(code))


@pytest.fixture(scope="session")
def xrays(tmp_path_factory) -> Path:
    """Three 32x32 16-bit PNG radiographs (random texture) in a folder."""
    folder = tmp_path_factory.mktemp("xrays")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((32, 32)) * 60000).astype(np.uint16)).save(folder / f"x{i}.png")
    return folder


@pytest.fixture(scope="session")
def cts(tmp_path_factory) -> Path:
    """Two 20^3 CT volumes in HU (NIfTI, 2 mm) in a folder."""
    folder = tmp_path_factory.mktemp("cts")
    rng = np.random.default_rng(1)
    for i in range(2):
        hu = (rng.random((20, 20, 20)) * 2000 - 1000).astype(np.float32)
        nib.save(nib.Nifti1Image(hu, np.diag([2.0, 2.0, 2.0, 1.0])), folder / f"ct{i}.nii.gz")
    return folder


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """A checkpoint folder holding generator.pt of both scales of :func:`tiny_generator` (as training writes)."""
    ckpt = tmp_path_factory.mktemp("models")
    model = tiny_generator()
    for s in range(model.num_scales):
        save_weights(model.scale(s).state_dict(), generator_path(ckpt, s))
    return ckpt
