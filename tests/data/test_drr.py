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

import nibabel as nib
import numpy as np

from monai_msgan.data import demo_ct_path, load_ct_ras, render_drr


def test_orientation_of_a_phantom():
    """A dense block on the patient's left, near the head, must appear top-right on a PA view."""
    vol = np.full((40, 30, 20), -1000.0, np.float32)  # RAS: x to the right, y anterior, z superior
    vol[2:8, 10:20, 14:18] = 1000.0  # small x is the patient's left (RAS: x increases to the right)
    img, spacing = render_drr(vol, (1.0, 1.0, 2.0))
    assert spacing == (1.0, 1.0)
    assert img.shape == (40, 40)  # rows: 20 slices of 2 mm resampled to 1 mm; columns: 40 voxels
    rows, cols = np.nonzero(img > img.max() / 2)
    # patient's left is on the viewer's right: columns 40-8..40-2; superior is up: rows near the top
    assert cols.min() >= 31 and cols.max() <= 38
    assert rows.max() < 14
    # attenuation of the block: (1 + 1000/1000) * mu_water per mm over 10 mm
    assert np.isclose(img.max(), 2 * 0.0206 * 10, rtol=0.05)


def test_outside_field_of_view_counts_as_air():
    vol = np.full((8, 8, 8), -2048.0, np.float32)
    img, _ = render_drr(vol, (1, 1, 1))
    assert np.allclose(img, 0)


def test_real_ct_drr_and_rotation():
    vol, spacing = load_ct_ras(demo_ct_path())
    assert vol.shape == (512, 512, 133) and np.allclose(spacing, (0.703125, 0.703125, 2.5))
    assert nib.aff2axcodes(nib.load(demo_ct_path()).affine) == ("L", "A", "S")
    pa, sp = render_drr(vol, spacing, 0.0)
    assert pa.shape == (round(133 * 2.5 / 0.703125), 512) and sp == (0.703125, 0.703125)
    rotated, _ = render_drr(vol, spacing, 15.0)
    assert not np.allclose(pa, rotated)
    # the mediastinum (centre columns) attenuates more than the lungs beside it, at mid height
    mid = pa[pa.shape[0] // 3]
    assert mid[246:266].mean() > mid[130:170].mean() and mid[246:266].mean() > mid[342:382].mean()
