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

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.bundles.run import ok, run_bundle
from tests.conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
# The quick configuration, shrunk further so the whole loop runs in seconds on 2 CPU cores.
TINY = [
    "--image_size",
    "[256,256]",
    "--num_scales",
    "3",
    "--patch_size",
    "[32,32]",
    "--num_iterations",
    "[3,2,2]",
    "--batch_size",
    "2",
]


def _bundle(run_id: str, configs: list[str], *args: str) -> subprocess.CompletedProcess:
    return run_bundle(BUNDLE, run_id, configs, *args)


@pytest.mark.slow
def test_prepare_train_generate_end_to_end(demo_raw, tmp_path):
    data = tmp_path / "data"
    inputs = [str(p) for p in [*demo_raw["radiograph"], *demo_raw["drrs"][:2]]]
    ok(
        subprocess.run(
            [
                sys.executable,
                str(REPO_ROOT / "data_scripts" / "prepare_xray.py"),
                "--input",
                *inputs,
                "--output",
                str(data),
                "--validation",
                str(demo_raw["drrs"][2]),
            ],
            capture_output=True,
            text=True,
        )
    )
    ckpt, logs, out = tmp_path / "models", tmp_path / "logs", tmp_path / "outputs"
    train_args = ["--dataset_dir", str(data), "--ckpt_dir", str(ckpt), "--log_dir", str(logs), *TINY]
    proc = ok(_bundle("training", ["train.json", "quick.json"], *train_args))
    for s in range(3):
        assert (ckpt / f"scale_{s}" / "generator.pt").is_file() and (ckpt / f"scale_{s}" / "checkpoint.pt").is_file()
        assert f"scale {s}: trained generator" in proc.stdout
        assert list((logs / f"scale_{s}").glob("events.out.tfevents.*"))

    # one scale alone (as a parallel worker would run it): already trained, so nothing is repeated
    before = (ckpt / "scale_1" / "generator.pt").stat().st_mtime_ns
    ok(_bundle("training", ["train.json", "quick.json"], *train_args, "--train_scale", "1"))
    assert (ckpt / "scale_1" / "generator.pt").stat().st_mtime_ns >= before

    infer_args = ["--ckpt_dir", str(ckpt), "--output_dir", str(out), *TINY[:6]]
    # larger than the training size (256): refused unless the field of view extension is asked for
    proc = ok(
        _bundle(
            "inference",
            ["inference.json", "quick.json"],
            *infer_args,
            "--output_size",
            "[512,384]",
            "--extend_field_of_view",
            "true",
            "--num_samples",
            "2",
            "--seed",
            "5",
            "--sw_batch_size",
            "3",
        )
    )
    assert "xray_001.nii.gz" in proc.stdout
    record = json.loads((out / "xrays.json").read_text())
    assert [s["seed"] for s in record["samples"]] == [5, 6]
    first = nib.load(out / "xray_000.nii.gz")
    assert first.shape == (512, 384) and first.get_data_dtype() == np.float32
    pixels = first.get_fdata()
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.std() > 0
    assert nib.aff2axcodes(first.affine)[:2] == ("L", "I")
    assert b"synthetic" in first.header["descrip"].tobytes()
    assert Image.open(out / "xray_000.png").size == (512, 384)  # NIfTI axis 0 = columns = PNG width
    second = nib.load(out / "xray_001.nii.gz").get_fdata()
    assert not np.allclose(pixels, second)
    # without the opt-in, a size other than the trained one is refused instead of tiling the anatomy
    proc = _bundle("inference", ["inference.json", "quick.json"], *infer_args, "--output_size", "[512,384]")
    assert proc.returncode != 0 and "differs from the trained size [256, 256]" in proc.stderr

    # never overwrite silently; the same seed with another sw_batch_size reproduces the image exactly
    proc = _bundle(
        "inference",
        ["inference.json", "quick.json"],
        *infer_args,
        "--output_size",
        "[512,384]",
        "--extend_field_of_view",
        "true",
        "--seed",
        "5",
    )
    assert proc.returncode != 0 and "already exists; refusing to overwrite" in proc.stderr
    ok(
        _bundle(
            "inference",
            ["inference.json", "quick.json"],
            *infer_args,
            "--output_size",
            "[512,384]",
            "--extend_field_of_view",
            "true",
            "--seed",
            "5",
            "--sw_batch_size",
            "1",
            "--overwrite",
            "true",
        )
    )
    assert np.array_equal(nib.load(out / "xray_000.nii.gz").get_fdata(), pixels)


def test_inference_without_trained_model_says_what_to_do(tmp_path):
    proc = _bundle(
        "inference", ["inference.json", "quick.json"], "--ckpt_dir", str(tmp_path), "--output_dir", str(tmp_path)
    )
    assert proc.returncode != 0
    assert "no trained generator for scale(s)" in proc.stderr and "--train_scale 0" in proc.stderr


def test_training_with_missing_dataset_names_it(tmp_path):
    proc = _bundle(
        "training",
        ["train.json", "quick.json"],
        "--dataset_dir",
        str(tmp_path / "nowhere"),
        "--ckpt_dir",
        str(tmp_path / "ckpt"),
    )
    assert proc.returncode != 0 and "nowhere/datalist.json does not exist" in proc.stderr
