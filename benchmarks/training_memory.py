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
"""Peak memory of training, scale by scale, at a bundle's default configuration.

Each scale trains for a few iterations in a fresh process with the bundle's own command
(`python -m monai.bundle run training --train_scale s`), on one synthetic image of the configured size (memory does
not depend on the pixel values). Reports the process's peak RSS, torch.cuda.max_memory_allocated on CUDA, and the
seconds of the whole run (start-up, caching the image and its pyramid, and the iterations). --cuda_cap_gib 12
limits the GPU memory of each run, as a 12 GB card would.

    python benchmarks/training_memory.py                          # xray_msgan_2d, default configuration
    python benchmarks/training_memory.py --bundle ct_msgan_3d
    python benchmarks/training_memory.py --device cuda --cuda_cap_gib 12 [--amp]

Host memory (RSS) also holds the cached training image and its pyramid; on a GPU the CUDA peak is the number that
decides whether a card is large enough.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import (  # noqa: E402
    BUNDLES,
    REPO,
    bundle_args,
    command,
    machine,
    mib,
    pyplot,
    refuse_existing,
    run_measured,
    save_figure,
    write_result,
)


def synthetic_dataset(bundle: Path, quick: bool, folder: Path, overrides: dict | None = None) -> dict:
    """One smooth random image of the configured size and spacing (config ids changed by ``overrides``), and its
    datalist."""
    import torch
    from monai.bundle import ConfigParser

    from monai_msgan.data.io import radiograph_affine, save_nifti, volume_affine, write_json

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / "train.json")] + ([str(bundle / "configs" / "quick.json")] * quick))
    parser.update(overrides or {})
    size = parser.get_parsed_content("image_size")
    num_scales = parser.get_parsed_content("num_scales")
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand((1, 1, *[s // 16 for s in size]), generator=g)
    mode = "bilinear" if len(size) == 2 else "trilinear"
    image = torch.nn.functional.interpolate(coarse, size=size, mode=mode, align_corners=False)[0, 0].numpy()
    if len(size) == 2:
        save_nifti(image.astype(np.float32), radiograph_affine([0.2, 0.2]), folder / "image.nii")
    else:
        spacing = parser.get_parsed_content("spacing")
        hu = (image * 2000 - 1000).astype(np.int16)
        save_nifti(hu, volume_affine(spacing, size), folder / "image.nii")
    write_json({"training": [{"image": "image.nii"}], "validation": []}, folder / "datalist.json")
    return {"image_size": list(size), "num_scales": num_scales}


def plot(result: dict, path: Path) -> None:
    """Peak memory per scale as bars (CUDA peak when measured, else peak RSS); failed scales are marked."""
    plt = pyplot()
    rows = result["rows"]
    cuda = any(r.get("cuda_peak_bytes") for r in rows)
    key = "cuda_peak_bytes" if cuda else "peak_rss_bytes"
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = [str(r["scale"]) for r in rows]
    heights = [(r[key] or 0) / 2**20 for r in rows]
    bars = ax.bar(x, heights, color="tab:blue")
    for bar, r in zip(bars, rows):
        text = f"{bar.get_height():.0f}" if r["status"] == "ok" else r["status"]
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    if result.get("cuda_cap_gib") and cuda:
        ax.axhline(result["cuda_cap_gib"] * 1024, ls=":", color="grey", label=f"{result['cuda_cap_gib']:g} GiB cap")
        ax.legend(fontsize=8)
    ax.set_xlabel("scale (0 = whole image at the coarsest resolution)")
    ax.set_ylabel("peak CUDA memory (MiB)" if cuda else "peak RSS of the process (MiB)")
    ax.grid(True, axis="y", alpha=0.3)
    device = result["gpu"] or result["cpu"] + " CPU"
    ax.set_title(f"training, {result['configuration']}, {result['iterations']} iterations\n{device}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", choices=BUNDLES, default=BUNDLES[0])
    p.add_argument("--quick", action="store_true", help="layer quick.json instead of the default configuration")
    p.add_argument("--iterations", type=int, default=3, help="iterations per scale (the first includes warm-up)")
    p.add_argument("--scales", type=int, nargs="+", default=None, help="scales to measure (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--amp", action="store_true", help="mixed precision (the bundle's amp id)")
    p.add_argument("--cuda_cap_gib", type=float, default=None, help="GPU memory cap of each run (CUDA only)")
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/<bundle>_training_memory.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    bundle = REPO / "bundles" / args.bundle
    output = Path(args.output or REPO / "benchmarks" / "results" / f"{args.bundle}_training_memory.json")
    if refuse_existing(output, args.overwrite):
        return 1
    pyplot()  # fail now, not after the runs, if matplotlib is missing
    files = [str(bundle / "configs" / "train.json")] + ([str(bundle / "configs" / "quick.json")] * args.quick)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        info = synthetic_dataset(bundle, args.quick, tmp)
        for scale in args.scales if args.scales is not None else range(info["num_scales"]):
            cmd = [
                "run", "training",
                "--bundle_root", str(bundle),
                "--dataset_dir", str(tmp), "--ckpt_dir", str(tmp / f"models_{scale}"),
                "--log_dir", str(tmp / "logs"), "--train_scale", str(scale),
                "--num_iterations", str(args.iterations), "--log_interval", "1", "--save_interval", "100000",
                "--amp", "true" if args.amp else "false",
            ]  # fmt: skip
            record = run_measured(cmd + bundle_args(files, args.device), cuda_cap_gib=args.cuda_cap_gib)
            rows.append({"scale": scale, **record})
            print(f"scale {scale}: {record['status']}", flush=True)
    result = {
        "benchmark": "training_memory",
        "command": command(),
        "configuration": f"{args.bundle}: train.json" + (" + quick.json" if args.quick else ""),
        **info,
        "iterations": args.iterations,
        "amp": args.amp,
        "cuda_cap_gib": args.cuda_cap_gib,
        **machine(args.device),
        "rows": rows,
    }
    print(f"{'scale':>5} {'status':>14} {'seconds':>8} {'peak RSS MiB':>13} {'CUDA peak MiB':>14}")
    for r in rows:
        cuda = mib(r.get("cuda_peak_bytes"))
        rss = mib(r["peak_rss_bytes"])
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"{r['scale']:>5} {r['status']:>14} {secs:>8} {rss:>13} {cuda:>14}")
    write_result(result, output, overwrite=True)
    plot(result, output.with_suffix(".png"))
    print(f"wrote {output} and {output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
