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
"""The ``synthesize`` workflow: dataset folders a MONAI training can use, their records, formats and refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import CacheDataset, load_decathlon_datalist
from monai.transforms import LoadImage, LoadImaged
from PIL import Image

from monai_msgan.data import radiograph_affine
from monai_msgan.synthesis import MultiScaleSynthesizer, SampleGeneration, SyntheticDataset, merge_dataset
from monai_msgan.synthesis.dataset import SYNTHETIC_NOTICE, resolve_shard
from monai_msgan.utils import distributed_device, generator_path, save_weights
from tests.conftest import REPO_ROOT
from tests.synthesis.test_generate import _bounded

XRAY = REPO_ROOT / "bundles" / "xray_msgan_2d"
CT = REPO_ROOT / "bundles" / "ct_msgan_3d"
SMALL_NETS = {"base_features": [4, 4, 8, 8, 8, 4], "patch_channels": 4, "patch_res_blocks": 1}
TINY_2D = {"image_size": [64, 64], "num_scales": 2, "patch_size": [32, 32], **SMALL_NETS}
TINY_3D = {"image_size": [64, 64, 32], "spacing": [4.0, 4.0, 5.0], "num_scales": 2, "patch_size": [16, 16, 16],
           **SMALL_NETS}  # fmt: skip
CONFIGS = ["inference.json", "quick.json", "synthesize.json"]


def tiny_checkpoints(bundle: Path, overrides: dict, ckpt_dir: Path) -> Path:
    """Random generators (bounded output, as a trained one's) with the bundle's own network definition, saved the
    way training exports them: a stand-in for a trained model, for the mechanics of synthesis."""
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / c) for c in CONFIGS[:2]])
    parser["bundle_root"] = str(bundle)
    for k, v in overrides.items():
        parser[k] = v
    net = parser.get_parsed_content("network_def")
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    for p in net.patches.parameters():
        p.data.mul_(0.05)
    for s in range(net.num_scales):
        save_weights(net.scale(s).state_dict(), generator_path(ckpt_dir, s))
    return ckpt_dir


def synthesize_cmd(bundle: Path, overrides: dict, ckpt: Path, out: Path, *args: str, run_id="synthesize") -> list[str]:
    """``python -m monai.bundle run synthesize`` as a user types it."""
    config_file = "[" + ",".join(f"'{bundle / 'configs' / c}'" for c in CONFIGS) + "]"
    cmd = [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config_file]
    cmd += ["--bundle_root", str(bundle), "--ckpt_dir", str(ckpt), "--output_dir", str(out)]
    for k, v in overrides.items():
        cmd += [f"--{k}", json.dumps(v)]
    return [*cmd, *args]


def bundle_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    return {**env, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": "", **extra}


def run_ok(cmd: list[str], **extra_env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=bundle_env(**extra_env), timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def xray_ckpt(tmp_path_factory) -> Path:
    return tiny_checkpoints(XRAY, TINY_2D, tmp_path_factory.mktemp("xray_ckpt"))


ARGS_2D = ["--num_samples", "5", "--seed", "7", "--privacy_audit", "false"]  # not the demo data's audit, if it exists


def test_2d_dataset_folder_is_a_monai_dataset_and_describes_itself(tmp_path, xray_ckpt):
    out = tmp_path / "synthetic"
    cmd = synthesize_cmd(XRAY, TINY_2D, xray_ckpt, out, *ARGS_2D)
    proc = run_ok(cmd)
    assert "5 to make" in proc.stdout
    datalist = load_decathlon_datalist(str(out / "datalist.json"), base_dir=str(out))
    assert [Path(d["image"]).name for d in datalist] == [f"xray_{i:05d}.nii.gz" for i in range(5)]
    assert json.loads((out / "datalist.json").read_text())["training"][0] == {"image": "images/xray_00000.nii.gz"}
    ds = CacheDataset(datalist, LoadImaged("image", ensure_channel_first=True), progress=False)
    images = [ds[i]["image"] for i in range(5)]
    assert all(tuple(x.shape) == (1, 64, 64) for x in images)
    assert all(0.0 <= float(x.min()) and float(x.max()) <= 1.0 for x in images)
    assert not torch.equal(images[0].as_tensor(), images[1].as_tensor())  # different seeds

    manifest = json.loads((out / "manifest.json").read_text())
    dataset, samples = manifest["dataset"], manifest["samples"]
    assert dataset["synthetic"] is True and dataset["num_samples"] == 5 and dataset["output_size"] == [64, 64]
    assert [s["seed"] for s in samples] == [7, 8, 9, 10, 11] and [s["index"] for s in samples] == list(range(5))
    assert all(s["condition_index"] is None and s["privacy"] == {"status": "not run"} for s in samples)
    assert all(s["seconds"]["generate"] > 0 for s in samples)
    for s in samples:  # each file's checksum is the file's
        for rel, info in s["files"].items():
            assert sha256(out / rel) == info["sha256"]
    assert dataset["checkpoint_sha256"] == {f"scale_{k}": sha256(generator_path(xray_ckpt, k)) for k in range(2)}
    assert dataset["config"]["image_size"] == [64, 64] and dataset["config"]["base_features"] == [4, 4, 8, 8, 8, 4]
    assert dataset["config"]["num_samples"] == 5 and dataset["config"]["seed"] == 7
    assert dataset["software"]["monai"] and dataset["software"]["torch"] == torch.__version__
    assert dataset["privacy_audit"]["status"] == "not run"

    card = (out / "README.md").read_text(encoding="utf-8")
    assert SYNTHETIC_NOTICE in card and "5 synthetic chest radiographs" in card and "Size 64 × 64 pixels" in card
    assert "## Privacy audit" in card and "Not run" in card and "## Licence" in card and "![" in card
    panel = np.asarray(Image.open(out / "preview.png"))
    assert panel.shape == (2 * 64, 4 * 64)  # the previews, four to a row
    for i, (r, c) in enumerate([(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]):
        tile = np.asarray(Image.open(out / "previews" / f"xray_{i:05d}.png"))
        assert np.array_equal(panel[64 * r : 64 * (r + 1), 64 * c : 64 * (c + 1)], tile) and tile.std() > 0

    # the same command again: nothing to make, nothing rewritten
    kept = [*(out / "images").iterdir(), out / "shards" / "shard_0_of_1.json"]  # the shard's account of the work too
    mtimes = {p: p.stat().st_mtime_ns for p in kept}
    proc = run_ok(cmd)
    assert "5 already on disk, 0 to make" in proc.stdout
    assert mtimes == {p: p.stat().st_mtime_ns for p in kept}
    # another job into the same folder is refused, naming the folder
    bad = subprocess.run(
        synthesize_cmd(XRAY, TINY_2D, xray_ckpt, out, "--num_samples", "6", "--seed", "7", "--privacy_audit", "false"),
        cwd=REPO_ROOT, capture_output=True, text=True, env=bundle_env(), timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "holds another synthetic dataset" in bad.stderr
    assert len(json.loads((out / "datalist.json").read_text())["training"]) == 5
    # the merge step runs on its own as well
    (out / "README.md").unlink()
    run_ok(synthesize_cmd(XRAY, TINY_2D, xray_ckpt, out, *ARGS_2D, run_id="merge"))
    assert SYNTHETIC_NOTICE in (out / "README.md").read_text(encoding="utf-8")


def _generation(out: Path, num_samples=3, **kwargs) -> SampleGeneration:
    synth = MultiScaleSynthesizer(_bounded(2), 64, device="cpu")
    affine = radiograph_affine((0.5, 0.25))
    return SampleGeneration(synth, (128, 192), out, affine, num_samples=num_samples, seed=3, **kwargs)


def test_png_output_holds_the_nifti_values_in_16_bits(tmp_path):
    paths = {}
    for fmt in ("nifti", "png"):
        datalist = SyntheticDataset(_generation(tmp_path / fmt, 2), output_format=fmt).run()
        assert datalist == tmp_path / fmt / "datalist.json"
        paths[fmt] = [tmp_path / fmt / d["image"] for d in json.loads(datalist.read_text())["training"]]
    for nii, png in zip(paths["nifti"], paths["png"]):
        ref = nib.load(nii).get_fdata()
        raw = np.asarray(Image.open(png))
        assert raw.dtype == np.uint16 and raw.shape == (192, 128)  # rows = y, columns = x
        assert np.abs(raw.T / 65535.0 - ref).max() <= 0.5 / 65535 + 1e-6
        loaded = LoadImage(image_only=True)(str(png))  # MONAI reads it back in (x, y) order
        assert tuple(loaded.shape) == (128, 192) and np.abs(np.asarray(loaded) / 65535.0 - ref).max() < 1e-4


def test_refusals_name_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="output_format must be one of"):
        SyntheticDataset(_generation(tmp_path), output_format="jpeg")
    with pytest.raises(ValueError, match="privacy_filter needs the privacy audit"):
        SyntheticDataset(_generation(tmp_path), privacy_audit=False, privacy_filter=True)
    with pytest.raises(FileNotFoundError, match="training datalist"):
        SyntheticDataset(_generation(tmp_path), privacy_audit=True, training_datalist=tmp_path / "none.json")
    synth3d = MultiScaleSynthesizer(_bounded(3), 32, device="cpu")
    gen3d = SampleGeneration(synth3d, (64, 64, 64), tmp_path, np.eye(4))
    with pytest.raises(ValueError, match="'png' writes 2D images only"):
        SyntheticDataset(gen3d, output_format="png")
    (tmp_path / "notes.txt").write_text("mine")  # a folder that is not a dataset is left alone
    with pytest.raises(FileExistsError, match="not a synthetic dataset folder"):
        SyntheticDataset(_generation(tmp_path)).run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    with pytest.raises(FileNotFoundError, match="not a synthetic dataset folder"):
        merge_dataset(tmp_path)


def test_merge_names_missing_samples_and_a_corrupt_file_is_made_again(tmp_path):
    data = SyntheticDataset(_generation(tmp_path, 4), shard=[0, 2])
    assert data.run() is None  # shard 1 has not run
    assert sorted(p.name for p in (tmp_path / "images").glob("*.json")) == ["sample_00000.json", "sample_00002.json"]
    with pytest.raises(ValueError, match=r"2 of 4 samples are missing or incomplete \(indices \[1, 3\]\)"):
        merge_dataset(tmp_path)
    SyntheticDataset(_generation(tmp_path, 4), shard=[1, 2]).run()
    datalist = json.loads((tmp_path / "datalist.json").read_text())
    assert len(datalist["training"]) == 4
    # a truncated image (e.g. a disk that filled up) no longer counts as done, and is made again
    image = tmp_path / "images" / "sample_00002.nii.gz"
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"indices \[2\]"):
        merge_dataset(tmp_path)
    SyntheticDataset(_generation(tmp_path, 4), shard=[0, 1]).run()
    assert image.read_bytes() == good


def test_shard_from_argument_or_torchrun_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_shard(None) == (0, 1)
    assert resolve_shard([2, 3]) == (2, 3)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert resolve_shard(None) == (1, 4)
    assert resolve_shard([0, 2]) == (0, 2)  # an explicit shard wins
    with pytest.raises(ValueError, match=r"shard gives shard 3 of 3"):
        resolve_shard([3, 3])
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE gives shard 4 of 4"):
        resolve_shard(None)


def test_disk_buffer_streams_the_same_samples(tmp_path):
    arrays = {}
    for mode in ("memory", "disk"):
        SyntheticDataset(_generation(tmp_path / mode, 2, output_buffer=mode)).run()
        records = json.loads((tmp_path / mode / "manifest.json").read_text())["samples"]
        arrays[mode] = [nib.load(tmp_path / mode / r["image"]).get_fdata() for r in records]
        assert all((tmp_path / mode / r["preview"]).is_file() for r in records)
    for a, b in zip(arrays["memory"], arrays["disk"]):
        assert a.shape == (128, 192) and np.abs(a - b).max() <= 1e-5
    with pytest.raises(ValueError, match="needs the image in memory"):
        SyntheticDataset(_generation(tmp_path / "x", output_buffer="disk"), output_format="dicom")


def test_each_torchrun_process_takes_its_own_device(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    if torch.cuda.is_available():
        assert distributed_device() == torch.device(f"cuda:{1 % torch.cuda.device_count()}")
    else:
        assert distributed_device() == torch.device("cpu")
