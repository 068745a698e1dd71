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
"""The bundle's multi-GPU layers as a user runs them: ``torchrun --nproc_per_node 2`` on the CPU (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_msgan.utils import load_weights
from tests.bundles.run import ok, run_bundle
from tests.conftest import REPO_ROOT
from tests.engines.test_distributed import TINY, tiny_dataset

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
SIZE = ["--image_size", "[64,64]", "--num_scales", "2", "--patch_size", "[16,16]"]
# torchrun sets OMP_NUM_THREADS=1 in its processes: single-process runs compared bit for bit with them use the same
# thread count (another count sums in another order)
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TRAIN = [*SIZE, "--num_iterations", "[4,3]", "--batch_size", str(TINY["batch_size"]), "--patches_per_image", "2"]


def torchrun(run_id: str, configs: list[str], *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 -m monai.bundle run <run_id>`` with layered ``configs``."""
    config_file = "[" + ",".join(f"'{BUNDLE / 'configs' / c}'" for c in configs) + "]"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "monai.bundle", "run", run_id, "--config_file", config_file, "--bundle_root", str(BUNDLE), *args]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def scales_on_ranks(tmp_path_factory):
    """Scales 0 and 1 trained at once, one per rank, by the bundle's multi-GPU layer in ``scales`` mode."""
    tmp = tmp_path_factory.mktemp("multi_gpu")
    data = tiny_dataset(tmp / "data")
    models, logs = tmp / "models", tmp / "logs"
    args = ["--dataset_dir", str(data), "--ckpt_dir", str(models), "--log_dir", str(logs), *TRAIN]
    proc = ok(
        torchrun(
            "training", ["train.json", "quick.json", "multi_gpu_train.json"], *args, "--distributed_mode", "scales"
        )
    )
    return {"tmp": tmp, "data": data, "models": models, "logs": logs, "args": args, "proc": proc}


@pytest.mark.slow
def test_scales_on_ranks_train_like_separate_runs(scales_on_ranks):
    run = scales_on_ranks
    text = run["proc"].stdout + run["proc"].stderr
    assert "rank 0 of 2 (scales): training scales [0]" in text and "rank 1 of 2 (scales): training scales [1]" in text
    for s in (0, 1):
        assert (run["models"] / f"scale_{s}" / "generator.pt").is_file()
        assert len(list((run["logs"] / f"scale_{s}").glob("events.out.tfevents.*"))) == 1
    # a scale trained on its rank is the scale a single process trains alone with train_scale (same seed)
    alone = run["tmp"] / "alone"
    args = [*run["args"][:2], "--ckpt_dir", str(alone), "--log_dir", str(run["tmp"] / "alone_logs"), *TRAIN]
    ok(run_bundle(BUNDLE, "training", ["train.json", "quick.json"], *args, "--train_scale", "1", env=ONE_THREAD))
    a = load_weights(run["models"] / "scale_1" / "generator.pt")
    b = load_weights(alone / "scale_1" / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_sharded_inference_fills_one_folder(scales_on_ranks):
    models, tmp = scales_on_ranks["models"], scales_on_ranks["tmp"]
    common = ["--ckpt_dir", str(models), *SIZE, "--num_samples", "3", "--seed", "4"]
    out = tmp / "sharded"
    configs = ["inference.json", "quick.json", "multi_gpu_inference.json"]
    ok(torchrun("inference", configs, *common, "--output_dir", str(out)))
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"xray_00{i}.{e}" for i in range(3) for e in ("nii.gz", "png")] + ["xrays.json"])
    record = json.loads((out / "xrays.json").read_text())
    assert record["world_size"] == 2
    assert [(s["seed"], s["nifti"], s["rank"]) for s in record["samples"]] == [
        (4, "xray_000.nii.gz", 0),
        (5, "xray_001.nii.gz", 1),
        (6, "xray_002.nii.gz", 0),
    ]
    # the same images as one process makes
    single = tmp / "single"
    configs = ["inference.json", "quick.json"]
    ok(run_bundle(BUNDLE, "inference", configs, *common, "--output_dir", str(single), env=ONE_THREAD))
    for i in range(3):
        a, b = (nib.load(d / f"xray_00{i}.nii.gz").get_fdata() for d in (out, single))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bundle", ["xray_msgan_2d", "ct_msgan_3d"])
def test_multi_gpu_layers_parse_over_train_and_inference(bundle):
    from monai.bundle import ConfigParser

    configs = REPO_ROOT / "bundles" / bundle / "configs"
    train = ConfigParser()
    train.read_config([str(configs / "train.json"), str(configs / "quick.json"), str(configs / "multi_gpu_train.json")])
    assert train["training_run"]["_target_"] == "monai_msgan.engines.DistributedMultiScaleTraining"
    assert train["training_run"]["train_files"] == "@train_datalist"  # the rest of train.json's run is kept
    assert train.get_parsed_content("distributed_mode") == "ddp" and train.get_parsed_content("rank_scales") is None
    assert train.get_parsed_content("device") == torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    infer = ConfigParser()
    infer.read_config([str(configs / "inference.json"), str(configs / "multi_gpu_inference.json")])
    init = infer["initialize"]
    assert len(init) == 2 and "load_checkpoints" in init[0] and "init_distributed" in init[1]
    assert "destroy_distributed" in infer["finalize"][0]
