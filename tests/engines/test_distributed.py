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
"""Data-parallel training of the real bundle configuration in two gloo processes, and the rank bookkeeping."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from monai_msgan.engines import RankShardSampler, RankSyncedAugment, assign_scales, distributed_seed
from monai_msgan.utils import init_distributed, load_weights, rank_and_world, unwrap
from tests.conftest import REPO_ROOT

BUNDLE = REPO_ROOT / "bundles" / "xray_msgan_2d"
CONFIGS = [str(BUNDLE / "configs" / c) for c in ("train.json", "quick.json", "multi_gpu_train.json")]
# the quick configuration shrunk to seconds: 64x64 images, base 32x32 and one patch scale of 16x16 patches
TINY = {
    "image_size": [64, 64],
    "num_scales": 2,
    "patch_size": [16, 16],
    "num_iterations": [4, 3],
    "batch_size": 2,
    "patches_per_image": 2,
    "save_interval": 2,
    "log_interval": 1,
}


def tiny_dataset(folder: Path, n: int = 4, size: int = 64) -> Path:
    """``n`` smooth random images in [0, 1] and their datalist."""
    from monai_msgan.data.io import radiograph_affine, save_nifti, write_json

    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        coarse = torch.rand((1, 1, size // 8, size // 8), generator=g)
        image = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
        save_nifti(image[0, 0].numpy().astype(np.float32), radiograph_affine([1.0, 1.0]), folder / f"img_{i}.nii.gz")
    write_json(
        {"training": [{"image": f"img_{i}.nii.gz"} for i in range(n)], "validation": []}, folder / "datalist.json"
    )
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    """One rank: the bundle's layered training config, trained scale by scale; saves what the test compares."""
    from monai.bundle import ConfigParser

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    parser = ConfigParser()
    parser.read_config(CONFIGS)
    parser.update(
        {
            **TINY,
            "bundle_root": str(BUNDLE),
            "dataset_dir": data,
            # a folder per rank, only for this test: shows that rank 1 writes nothing (a real run shares one)
            "ckpt_dir": f"{out}/models_rank{rank}",
            "log_dir": f"{out}/logs_rank{rank}",
        }
    )
    parser.get_parsed_content("initialize")
    run = parser.get_parsed_content("training_run")
    results = {}
    for scale in run.train_scales:
        initial = {k: v.clone() for k, v in run.generator.scale(scale).state_dict().items()}
        trainer, writer = run.build_trainer(scale)
        assert writer is None or rank == 0
        trainer.run()
        results[scale] = {
            "initial": initial,
            "generator": unwrap(trainer.generator).state_dict(),
            "discriminator": {k: v.detach().clone() for k, v in unwrap(trainer.discriminator).named_parameters()},
            "discriminator_buffers": {k: v.clone() for k, v in unwrap(trainer.discriminator).named_buffers()},
            "ema": trainer.generator_ema.module.state_dict(),
            "augment_p": trainer.augment.probability,
            "loss_d": trainer.state.output["loss_d"],
        }
    # the adaptive augmentation probability follows both ranks' outputs: alone, rank 0's (all above the midpoint)
    # would raise p to 0.6 and rank 1's lower it to 0.4; together r_t = 0 < 0.6 lowers it on both
    augment = RankSyncedAugment(2, "translation", p=0.5, target=0.6, interval=1, speed=10)
    augment.update(torch.full((2, 1, 3, 3), 1.0 if rank == 0 else 0.0))
    results["synced_p"] = augment.probability
    torch.save(results, f"{out}/rank{rank}.pt")
    parser.get_parsed_content("finalize")


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ddp_ranks_end_with_identical_weights_and_rank0_alone_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    data = tiny_dataset(tmp_path / "data")
    mp.spawn(_ddp_worker, args=(2, free_port(), str(data), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0.pop("synced_p") == pytest.approx(0.4) and r1.pop("synced_p") == pytest.approx(0.4)
    assert sorted(r0) == sorted(r1) == [0, 1]
    for scale in (0, 1):
        a, b = r0[scale], r1[scale]
        # per-rank seeds: different initial weights, losses and batches, but DDP makes the weights equal
        assert not _equal(a["initial"], b["initial"])
        assert a["loss_d"] != b["loss_d"]
        assert _equal(a["generator"], b["generator"]), f"scale {scale}: generators differ between ranks"
        assert _equal(a["discriminator"], b["discriminator"]), f"scale {scale}: discriminators differ"
        # batch norm (the bundles' discriminators): DDP broadcasts rank 0's running statistics at the start of every
        # forward pass, so each rank ends with its own last update of them; rank 0's are the ones saved
        running = [k for k in a["discriminator_buffers"] if k.endswith("running_mean")]
        assert running and a["discriminator_buffers"].keys() == b["discriminator_buffers"].keys()
        assert all(torch.isfinite(v).all() for v in a["discriminator_buffers"].values())
        assert _equal(a["ema"], b["ema"]) and a["augment_p"] == b["augment_p"]
        assert not _equal(a["generator"], {k: v for k, v in a["initial"].items()})  # it trained
        # rank 0's checkpoint holds the weights both ranks ended with
        saved = load_weights(tmp_path / "models_rank0" / f"scale_{scale}" / "checkpoint.pt")
        assert (
            _equal(saved["generator"], b["generator"])
            and saved["trainer"]["iteration"] == TINY["num_iterations"][scale]
        )
        assert _equal(load_weights(tmp_path / "models_rank0" / f"scale_{scale}" / "generator.pt"), b["ema"])
        assert list((tmp_path / "logs_rank0" / f"scale_{scale}").glob("events.out.tfevents.*"))
    written_by_rank1 = [p for d in ("models_rank1", "logs_rank1") for p in (tmp_path / d).rglob("*") if p.is_file()]
    assert written_by_rank1 == []


def test_assign_scales():
    assert assign_scales([0, 1, 2, 3], 2) == [[0, 2], [1, 3]]
    assert assign_scales([0, 1, 2], 4) == [[0], [1], [2], []]
    assert assign_scales([2], 2) == [[2], []]
    assert assign_scales([0, 1, 2, 3], 2, [0, [1, 2, 3]]) == [[0], [1, 2, 3]]
    with pytest.raises(ValueError, match="one per rank"):
        assign_scales([0, 1], 2, [[0, 1]])
    with pytest.raises(ValueError, match="more than one rank"):
        assign_scales([0, 1], 2, [[0, 1], [1]])
    with pytest.raises(ValueError, match="not among the scales"):
        assign_scales([0, 1], 2, [[0], [5]])


def test_rank_shard_sampler_partitions_and_reshuffles():
    data = list(range(10))
    shares = [RankShardSampler(data, batch_size=2, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    first = [list(s) for s in shares]
    assert sorted(first[0] + first[1]) == data  # disjoint shares covering the data
    second = [list(s) for s in shares]
    assert second != first and sorted(second[0] + second[1]) == data  # a new shuffle on every pass
    # a share smaller than a batch: the rank draws a full batch from its share, with replacement
    small = [RankShardSampler(list(range(3)), batch_size=4, num_replicas=2, rank=r) for r in (0, 1)]
    draws = [list(s) for s in small]
    assert [len(d) for d in draws] == [4, 4] and not set(draws[0]) & set(draws[1])
    # fewer images than ranks (one CT volume on two ranks): every rank trains on it
    assert list(RankShardSampler([0], batch_size=2, num_replicas=2, rank=1)) == [0, 0]


def test_single_process_defaults_and_torchrun_check(monkeypatch):
    assert rank_and_world() == (0, 1)
    assert distributed_seed(7, "ddp") == 7 and distributed_seed(7, "scales") == 7
    with pytest.raises(ValueError, match="distributed_mode"):
        distributed_seed(7, "pipeline")
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        init_distributed()
