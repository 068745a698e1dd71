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
"""Image + label pairs through both bundles (configs/labels.json): train on (image, label map), generate from given
and edited label maps, each image written with its label map on the same grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import load_decathlon_datalist
from monai.transforms import ResizeWithPadOrCrop

from monai_msgan.data import DEMO_CT_LABEL_MAPPING, prepare_demo_ct
from monai_msgan.transforms import LabelRemap
from tests.bundles.run import ok, run_bundle
from tests.conftest import REPO_ROOT

CT = REPO_ROOT / "bundles" / "ct_msgan_3d"
XRAY = REPO_ROOT / "bundles" / "xray_msgan_2d"
CT_TINY = [
    "--image_size",
    "[64,64,64]",
    "--spacing",
    "[4.0,4.0,4.0]",
    "--num_scales",
    "2",
    "--patch_size",
    "[32,32,32]",
]
XRAY_TINY = ["--image_size", "[128,128]", "--num_scales", "2", "--patch_size", "[32,32]"]
TRAIN = ["--num_iterations", "[2,2]", "--batch_size", "1", "--patches_per_image", "2"]


def _check_pairs(out, prefix: str, count: int, num_classes: int) -> list[tuple]:
    """Each sample's image and label: same grid, integer classes; returns (image, label) arrays."""
    record = json.loads((out / f"{prefix}s.json").read_text())
    assert len(record["samples"]) == count
    pairs = []
    for s in record["samples"]:
        img, lab = nib.load(out / s["image"]), nib.load(out / s["label"])
        assert s["image"] == s["nifti"] and img.shape == lab.shape and np.allclose(img.affine, lab.affine)
        labels = np.asarray(lab.dataobj)
        assert labels.dtype == np.uint8 and labels.max() < num_classes
        pairs.append((img.get_fdata(), labels))
    return pairs


@pytest.mark.slow
def test_ct_from_demo_labels_and_an_edited_label_map(tmp_path):
    data = tmp_path / "data"
    prepare_demo_ct(data, spacing=(4.0, 4.0, 4.0), labels=True)
    ckpt = tmp_path / "models"
    configs = ["train.json", "quick.json", "labels.json"]
    ok(run_bundle(CT, "training", configs, "--dataset_dir", str(data), "--ckpt_dir", str(ckpt), "--log_dir",
                  str(tmp_path / "logs"), *CT_TINY, *TRAIN))  # fmt: skip
    # edit the real label map: the lungs and trachea become liver (a soft organ)
    real = nib.load(data / "labels" / "cxr.nii.gz")
    values = np.asarray(real.dataobj).copy()
    values[np.isin(values, [10, 11, 12, 13, 14, 16])] = 5  # lobes and trachea
    edited = tmp_path / "edited.nii.gz"
    nib.save(nib.Nifti1Image(values, real.affine, real.header), str(edited))
    out = tmp_path / "out"
    label_files = f"['{data / 'labels' / 'cxr.nii.gz'}','{edited}']"
    infer = ["inference.json", "quick.json", "labels.json"]
    ok(run_bundle(CT, "inference", infer, "--dataset_dir", str(data), "--ckpt_dir", str(ckpt),
                  "--output_dir", str(out), "--label_files", label_files, *CT_TINY))  # fmt: skip
    (img0, lab0), (img1, lab1) = _check_pairs(out, "ct", 2, 5)
    # the written label map is the given one, grouped into classes, at the output geometry (crop of the 4 mm grid)
    expected = LabelRemap(DEMO_CT_LABEL_MAPPING)(torch.as_tensor(np.asarray(real.dataobj)[None].astype(np.int64)))
    expected = ResizeWithPadOrCrop((64, 64, 64))(expected)[0].numpy()
    assert np.array_equal(lab0, expected) and (lab0 == 2).any() and not (lab1 == 2).any()
    assert np.array_equal(lab1 == 4, (lab0 == 4) | (lab0 == 2))
    assert img0.min() >= -1024 and img0.max() <= 3071 and not np.array_equal(img0, img1)
    geometry = nib.load(out / "ct_000.nii.gz")
    assert nib.aff2axcodes(geometry.affine) == ("R", "A", "S") and np.allclose(geometry.header.get_zooms(), 4.0)
    # a synthetic dataset of image + label pairs (synthesize.json on top): its datalist lists both for each sample
    dataset = tmp_path / "dataset"
    ok(run_bundle(CT, "synthesize", [*infer, "synthesize.json"], "--dataset_dir", str(data), "--ckpt_dir", str(ckpt),
                  "--output_dir", str(dataset), "--label_files", label_files, "--privacy_audit", "false",
                  "--num_samples", "1", *CT_TINY))  # fmt: skip
    entries = load_decathlon_datalist(str(dataset / "datalist.json"), base_dir=str(dataset))
    assert len(entries) == 2 and all(set(e) == {"image", "label"} for e in entries)
    for entry, (img, lab) in zip(entries, [(img0, lab0), (img1, lab1)]):
        pair_img, pair_lab = nib.load(entry["image"]), nib.load(entry["label"])
        assert np.allclose(pair_img.affine, pair_lab.affine) and np.array_equal(np.asarray(pair_lab.dataobj), lab)
        assert np.allclose(pair_img.get_fdata(), img)  # the same seeds and label maps as the inference above


@pytest.mark.slow
def test_xray_with_embedded_labels(demo_dataset, tmp_path):
    """2D, with the learned embedding: label maps made from the real demo radiographs' intensities (3 classes)."""
    datalist = json.loads((demo_dataset / "datalist.json").read_text())
    data = tmp_path / "data"
    for entry in datalist["training"] + datalist["validation"]:
        img = nib.load(demo_dataset / entry["image"])
        x = np.asarray(img.dataobj, dtype=np.float32)
        entry["label"] = entry["image"].replace(".nii.gz", "_label.nii.gz")
        (data / entry["image"]).parent.mkdir(parents=True, exist_ok=True)
        (data / entry["image"]).write_bytes((demo_dataset / entry["image"]).read_bytes())
        labels = np.digitize(x, np.quantile(x, [0.4, 0.8])).astype(np.uint8)
        nib.save(nib.Nifti1Image(labels, img.affine), str(data / entry["label"]))
    (data / "datalist.json").write_text(json.dumps(datalist))
    layer = ["--label_num_classes", "3", "--label_encoding", "index", "--label_embedding_dim", "4"]
    ckpt = tmp_path / "models"
    train = ["train.json", "quick.json", "labels.json"]
    ok(run_bundle(XRAY, "training", train, "--dataset_dir", str(data), "--ckpt_dir", str(ckpt),
                  "--log_dir", str(tmp_path / "logs"), *XRAY_TINY, *TRAIN, *layer))  # fmt: skip
    state = torch.load(ckpt / "scale_0" / "generator.pt", weights_only=True)
    assert state["label_embedding.embedding.weight"].shape == (3, 4)
    out = tmp_path / "out"
    ok(run_bundle(XRAY, "inference", ["inference.json", "quick.json", "labels.json"], "--dataset_dir", str(data),
                  "--ckpt_dir", str(ckpt), "--output_dir", str(out), *XRAY_TINY, *layer))  # fmt: skip
    ((image, labels),) = _check_pairs(out, "xray", 1, 3)
    assert image.shape == (128, 128) and set(np.unique(labels)) == {0, 1, 2}
