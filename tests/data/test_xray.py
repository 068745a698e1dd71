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

import copy
import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from monai_msgan.data import (
    demo_radiograph_path,
    find_images,
    load_datalist,
    normalise_intensity,
    prepare_xrays,
    read_xray,
    write_radiograph,
)


@pytest.fixture(scope="module")
def radiograph():
    return pydicom.dcmread(demo_radiograph_path())


def _variant(ds, path, **changes):
    ds = copy.deepcopy(ds)
    for k, v in changes.items():
        if v is None:
            if k in ds:
                delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)
    return path


def test_real_monochrome1_radiograph_is_inverted(radiograph, tmp_path):
    img = read_xray(demo_radiograph_path())
    assert img.pixels.shape == (1955, 1841) and img.pixels.dtype == np.float32
    raw = radiograph.pixel_array.astype(np.float64)
    # MONOCHROME1: stored high = dark; after reading, high = bright, i.e. anti-correlated with the stored values
    assert np.corrcoef(raw.ravel()[::97], img.pixels.ravel()[::97])[0, 1] < -0.99
    mono2 = read_xray(_variant(radiograph, tmp_path / "mono2.dcm", PhotometricInterpretation="MONOCHROME2"))
    assert np.allclose(img.pixels, mono2.pixels.max() + mono2.pixels.min() - mono2.pixels, atol=1e-2)


def test_rescale_and_window_are_honoured(radiograph, tmp_path):
    raw = radiograph.pixel_array.astype(np.float64)
    path = _variant(
        radiograph, tmp_path / "rescaled.dcm", PhotometricInterpretation="MONOCHROME2",
        RescaleSlope=2, RescaleIntercept=-100, WindowCenter=None, WindowWidth=None,
    )
    assert np.allclose(read_xray(path).pixels, 2 * raw - 100)
    # a narrow window clips: values below and above it saturate
    path = _variant(radiograph, tmp_path / "window.dcm", PhotometricInterpretation="MONOCHROME2",
                    WindowCenter=12000, WindowWidth=2000)
    px = read_xray(path).pixels
    assert np.isclose(px[raw < 11000].std(), 0) and np.isclose(px[raw > 13000].std(), 0)
    assert px[raw > 13000].mean() > px[raw < 11000].mean()


def test_png_and_nifti(tmp_path):
    grey16 = (np.arange(64 * 48).reshape(64, 48) * 13 % 65535).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "a.png")
    assert np.array_equal(read_xray(tmp_path / "a.png").pixels, grey16.astype(np.float32))
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "b.png")
    lum = read_xray(tmp_path / "b.png").pixels
    assert lum.shape == (10, 12) and np.all(lum == lum[0, 0]) and lum[0, 0] > 0
    px = np.random.default_rng(0).random((30, 20)).astype(np.float32)
    write_radiograph(px, (0.5, 0.25), tmp_path / "c.nii.gz")
    back = read_xray(tmp_path / "c.nii.gz")
    assert np.array_equal(back.pixels, px) and back.spacing == (0.5, 0.25)
    # stored as (columns, rows) with a coronal geometry: columns to patient-left, rows to inferior
    nii = nib.load(tmp_path / "c.nii.gz")
    assert nii.shape == (20, 30) and nib.aff2axcodes(nii.affine)[:2] == ("L", "I")


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: (p / "junk.dcm").write_bytes(b"\x00" * 300) and p / "junk.dcm", "junk.dcm: cannot read DICOM"),
        (lambda p: nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), p / "ct.nii.gz") or p / "ct.nii.gz",
         "ct.nii.gz: NIfTI of shape"),
        (lambda p: (p / "notes.txt").write_text("x") and p / "notes.txt", "notes.txt: unsupported file type"),
        (lambda p: (p / "bad.png").write_bytes(b"not a png") and p / "bad.png", "bad.png: cannot read image"),
        (lambda p: Image.fromarray(np.full((8, 8), 7, np.uint8)).save(p / "flat.png") or p / "flat.png", None),
    ],
)
def test_bad_files_name_the_file(tmp_path, make, match):
    path = make(tmp_path)
    if match is None:  # readable but constant: refused when normalising, naming the file
        with pytest.raises(ValueError, match="flat.png: the image is constant"):
            prepare_xrays([path], tmp_path / "out", val_fraction=0)
        return
    with pytest.raises(ValueError, match=match):
        read_xray(path)


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.dcm"):
        read_xray(tmp_path / "nope.dcm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: the folder holds no"):
        find_images([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="missing"):
        find_images([tmp_path / "missing"])


def test_prepare_writes_normalised_nifti_and_datalist(demo_raw, tmp_path):
    inputs = [*demo_raw["radiograph"], demo_raw["drrs"][0]]
    out = tmp_path / "prepared"
    datalist = prepare_xrays(inputs, out, validation=[demo_raw["drrs"][1]])
    assert json.loads((out / "datalist.json").read_text()) == datalist
    assert [e["image"] for e in datalist["training"]] == ["images/RG1_UNCR.nii.gz", "images/drr_-10deg.nii.gz"]
    assert [e["image"] for e in datalist["validation"]] == ["images/drr_+0deg.nii.gz"]
    entries = load_datalist(out, "training")
    for e in entries:
        data = nib.load(e["image"]).get_fdata()
        assert data.min() >= 0 and data.max() <= 1 and data.std() > 0.1
    # the real radiograph keeps its size, stored as (columns, rows)
    assert nib.load(entries[0]["image"]).shape == (1841, 1955)
    with pytest.raises(FileExistsError, match="datalist.json already exists"):
        prepare_xrays(inputs, out)
    prepare_xrays(inputs, out, overwrite=True, val_fraction=0.5, seed=1)
    split = json.loads((out / "datalist.json").read_text())
    assert len(split["training"]) == 1 and len(split["validation"]) == 1


def test_duplicate_names_are_kept_apart(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray((np.random.default_rng(len(sub)).random((16, 16)) * 255).astype(np.uint8)).save(
            tmp_path / sub / "img.png"
        )
    d = prepare_xrays([tmp_path / "a", tmp_path / "b"], tmp_path / "out", val_fraction=0)
    assert [e["image"] for e in d["training"]] == ["images/img.nii.gz", "images/img_1.nii.gz"]


def test_normalise_is_robust_to_outliers():
    x = np.linspace(0, 1, 10000).reshape(100, 100)
    x[0, 0] = 1e6
    y = normalise_intensity(x)
    assert y.min() == 0 and y.max() == 1 and 0.45 < np.median(y) < 0.55


def test_load_datalist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="datalist.json does not exist"):
        load_datalist(tmp_path)
    (tmp_path / "datalist.json").write_text('{"training": [{"image": "images/x.nii.gz"}]}')
    with pytest.raises(FileNotFoundError, match="images/x.nii.gz, which does not exist"):
        load_datalist(tmp_path)
    (tmp_path / "datalist.json").write_text("{bad json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_datalist(tmp_path)
    (tmp_path / "datalist.json").write_text('{"training": []}')
    with pytest.raises(ValueError, match="'training' is empty"):
        load_datalist(tmp_path)
    with pytest.raises(ValueError, match="no list under 'validation'"):
        load_datalist(tmp_path, "validation")
