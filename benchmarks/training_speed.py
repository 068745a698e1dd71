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
"""Training iterations per second and peak memory, scale by scale, of the bundles' default configurations.

Each bundle's `train.json` is parsed as `monai.bundle run training` parses it (its `initialize` included) and every
scale's real trainer (`MultiScaleTraining.build_trainer`: networks, optimisers, data loader, handlers) runs
`--warmup` + `--iterations` iterations on one synthetic image of the configured size (speed and memory do not depend
on the pixel values). Iterations/s counts the iterations after the warm-up (the clock is read after a CUDA
synchronisation at the end of each iteration); the peak is torch.cuda.max_memory_allocated (and _reserved) of that
scale on CUDA, the process's peak RSS so far on the CPU. `--cuda_cap_gib 12` caps the process's GPU memory with
torch.cuda.set_per_process_memory_fraction, as a 12 GiB card would; a scale that does not fit is reported as
"out of memory".

    python benchmarks/training_speed.py --device cuda --cuda_cap_gib 12          # both bundles, default configs
    python benchmarks/training_speed.py --bundles xray_msgan_2d --quick --device cpu \
        --set image_size=[128,128] num_scales=2 patch_size=[32,32] --iterations 3   # a quick check on a CPU
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import BUNDLES, REPO, command, machine, mib, parse_overrides, refuse_existing, write_result  # noqa: E402
from training_memory import synthetic_dataset  # noqa: E402


def measure_bundle(bundle: str, args: argparse.Namespace, overrides: dict, tmp: Path) -> dict:
    """Parse the bundle's training config, then time every requested scale's trainer."""
    import torch
    from ignite.engine import Events
    from monai.bundle import ConfigParser

    root = REPO / "bundles" / bundle
    files = [str(root / "configs" / "train.json")] + ([str(root / "configs" / "quick.json")] * args.quick)
    data = tmp / bundle
    data.mkdir()
    parser = ConfigParser()
    parser.read_config(files)
    parser.update(overrides)
    info = synthetic_dataset(root, args.quick, data, overrides)
    num_scales = info["num_scales"]
    steps = args.warmup + args.iterations
    parser.update(
        {
            "bundle_root": str(root),
            "dataset_dir": str(data),
            "ckpt_dir": str(tmp / f"{bundle}_models"),
            "log_dir": str(tmp / f"{bundle}_logs"),
            "num_iterations": [steps] * num_scales,
            "save_interval": 10**9,
            "log_interval": 10**9,
            "preview_interval": 10**9,
            "amp": args.amp,
        }
    )
    if args.device:
        parser["device"] = f"$torch.device('{args.device}')"
    parser.get_parsed_content("initialize")
    run = parser.get_parsed_content("training_run")
    device = run.device
    cuda = device.type == "cuda"
    rows = []
    for scale in args.scales if args.scales is not None else range(num_scales):
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        row = {"bundle": bundle, "scale": scale, "batch_size": run.batch_size[scale]}
        row["patches_per_batch"] = run.batch_size[scale] * (run.patches_per_image if scale > 0 else 1)
        row["input_size"] = (
            list(run.patch_size) if scale > 0 else [s // 2 ** (num_scales - 1) for s in info["image_size"]]
        )
        stamps: list[float] = []

        def stamp(_engine, stamps: list[float] = stamps) -> None:
            if cuda:
                torch.cuda.synchronize(device)
            stamps.append(time.perf_counter())

        t0 = time.perf_counter()
        trainer = None
        try:
            trainer, writer = run.build_trainer(scale)
            trainer.add_event_handler(Events.ITERATION_COMPLETED, stamp)
            trainer.run()
            if writer is not None:
                writer.close()
            timed = stamps[args.warmup - 1 :] if args.warmup > 0 else [t0, *stamps]
            row["status"] = "ok"
            row["iterations_per_s"] = (len(timed) - 1) / (timed[-1] - timed[0])
        except torch.OutOfMemoryError as e:
            row["status"] = "out of memory"
            row["error"] = str(e)[:300]
        row["seconds"] = time.perf_counter() - t0
        row["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device) if cuda else None
        row["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(device) if cuda else None
        row["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        rows.append(row)
        del trainer
        run.generator.scale(scale).to("cpu")
        gc.collect()
        ips = row.get("iterations_per_s")
        print(f"{bundle} scale {scale}: {row['status']}" + (f", {ips:.2f} it/s" if ips else ""), flush=True)
    return {"configuration": f"{bundle}: " + " + ".join(Path(f).name for f in files), **info, "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", nargs="+", choices=BUNDLES, default=list(BUNDLES))
    p.add_argument("--quick", action="store_true", help="layer quick.json instead of the default configuration")
    p.add_argument("--warmup", type=int, default=3, help="iterations before the clock starts (cuDNN, allocator)")
    p.add_argument("--iterations", type=int, default=10, help="timed iterations per scale")
    p.add_argument("--scales", type=int, nargs="+", default=None, help="scales to measure (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--amp", action="store_true", help="mixed precision (the bundle's amp id)")
    p.add_argument("--cuda_cap_gib", type=float, default=None, help="GPU memory cap of the process (CUDA only)")
    p.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="override config ids (tiny CPU checks)")
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/training_speed.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    if args.iterations < 1 or args.warmup < 0:
        raise SystemExit("--iterations must be at least 1 and --warmup at least 0.")
    output = Path(args.output or REPO / "benchmarks" / "results" / "training_speed.json")
    if refuse_existing(output, args.overwrite):
        return 1
    overrides = parse_overrides(args.set)
    import torch

    if args.cuda_cap_gib and torch.cuda.is_available() and args.device != "cpu":
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.cuda_cap_gib * 2**30 / total))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for bundle in args.bundles:
            results.append(measure_bundle(bundle, args, overrides, Path(tmp)))
    result = {
        "benchmark": "training_speed",
        "command": command(),
        "overrides": overrides,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "amp": args.amp,
        "cuda_cap_gib": args.cuda_cap_gib,
        **machine(args.device),
        "bundles": results,
    }
    head = f"{'bundle':<14} {'scale':>5} {'input':>12} {'batch':>5} {'status':>13} {'it/s':>8}"
    print(head + f" {'CUDA alloc MiB':>14} {'CUDA reserved MiB':>17} {'RSS MiB':>8}")
    for r in (r for b in results for r in b["rows"]):
        ips = f"{r['iterations_per_s']:.2f}" if r.get("iterations_per_s") else "-"
        size = "x".join(map(str, r["input_size"]))
        print(
            f"{r['bundle']:<14} {r['scale']:>5} {size:>12} {r['patches_per_batch']:>5} {r['status']:>13} {ips:>8} "
            f"{mib(r['peak_allocated_bytes']):>14} {mib(r['peak_reserved_bytes']):>17} {mib(r['peak_rss_bytes']):>8}"
        )
    write_result(result, output, overwrite=True)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
