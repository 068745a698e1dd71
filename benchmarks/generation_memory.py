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
"""Peak memory and time of generation versus output size, through the bundle's own inference command.

Each size runs `python -m monai.bundle run inference` in a fresh process, which reports its peak resident memory
(ru_maxrss) and, on CUDA, torch.cuda.max_memory_allocated. Network weights do not change memory or time, so
without --ckpt_dir the generators are freshly initialised from the configuration and saved to a temporary folder.

    python benchmarks/generation_memory.py --sizes 1024 2048 4096 [--quick] [--ckpt_dir DIR] [--device cuda]
    python benchmarks/generation_memory.py --bundle ct_msgan_3d --quick --sizes 128 256 --output_buffer memory
    python benchmarks/generation_memory.py --bundle ct_msgan_3d --quick --sizes 768 --output_buffer disk

Prints a table and writes JSON (device, versions, command, one row per size, bytes per added output pixel
between consecutive sizes) to --output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = ("xray_msgan_2d", "ct_msgan_3d")

CHILD = r"""
import json, resource, runpy, sys, time
import torch
sys.argv = ["monai.bundle"] + sys.argv[1:]
t0 = time.perf_counter()
try:
    runpy.run_module("monai.bundle", run_name="__main__")
except SystemExit as e:
    if e.code not in (0, None):
        raise
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print("BENCH " + json.dumps({"seconds": time.perf_counter() - t0,
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cuda_peak_bytes": cuda}))
"""


def config_files(bundle: Path, quick: bool, name: str) -> list[str]:
    return [str(bundle / "configs" / name)] + ([str(bundle / "configs" / "quick.json")] if quick else [])


def config_arg(bundle: Path, quick: bool, name: str) -> str:
    return "[" + ",".join(f"'{f}'" for f in config_files(bundle, quick, name)) + "]"


def init_checkpoints(bundle: Path, quick: bool, ckpt_dir: Path) -> None:
    """Save freshly initialised generators of the configuration (weights do not change memory or time)."""
    from monai.bundle import ConfigParser

    from monai_msgan.utils import generator_path, save_weights

    parser = ConfigParser()
    parser.read_config(config_files(bundle, quick, "inference.json"))
    parser["bundle_root"] = str(bundle)
    model = parser.get_parsed_content("network_def")
    for s in range(model.num_scales):
        save_weights(model.scale(s).state_dict(), generator_path(ckpt_dir, s))


def run_size(size: int, args, ckpt_dir: Path, out_dir: Path) -> dict:
    cmd = [
        sys.executable, "-c", CHILD, "run", "inference",
        "--config_file", config_arg(args.bundle_dir, args.quick, "inference.json"),
        "--bundle_root", str(args.bundle_dir),
        "--ckpt_dir", str(ckpt_dir), "--output_dir", str(out_dir / str(size)),
        "--output_size", "[" + ",".join([str(size)] * args.spatial_dims) + "]",
        "--sw_batch_size", str(args.sw_batch_size),
    ]  # fmt: skip
    cmd += ["--output_buffer", args.output_buffer]
    if args.overlap is not None:
        cmd += ["--overlap", str(args.overlap)]
    if args.device:
        cmd += ["--device", f"$torch.device('{args.device}')"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"size {size} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    record = json.loads(lines[-1][6:])
    (record_file,) = (out_dir / str(size)).glob("*s.json")
    gen = json.loads(record_file.read_text())
    return {
        "size": size,
        "pixels": size**args.spatial_dims,
        "output_buffer": gen["output_buffer"],
        "generation_seconds": gen["samples"][0]["seconds"],
        **record,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", choices=BUNDLES, default=BUNDLES[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096], help="side of the square/cube")
    p.add_argument(
        "--output_buffer",
        choices=["auto", "memory", "disk"],
        default="auto",
        help="where the finest scale is assembled",
    )
    p.add_argument("--quick", action="store_true", help="layer quick.json (the demo model)")
    p.add_argument("--ckpt_dir", default=None, help="trained checkpoints (default: freshly initialised)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--sw_batch_size", type=int, default=4)
    p.add_argument("--overlap", type=float, default=None, help="window overlap (default: the bundle's)")
    p.add_argument("--output", default=None, help="JSON file (default: benchmarks/results/<bundle>_memory.json)")
    args = p.parse_args()
    args.bundle_dir = REPO / "bundles" / args.bundle
    args.spatial_dims = 3 if args.bundle == "ct_msgan_3d" else 2
    args.output = args.output or str(REPO / "benchmarks" / "results" / f"{args.bundle}_memory.json")

    import monai
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(args.ckpt_dir) if args.ckpt_dir else Path(tmp) / "models"
        if not args.ckpt_dir:
            init_checkpoints(args.bundle_dir, args.quick, ckpt)
        rows = [run_size(s, args, ckpt, Path(tmp) / "out") for s in args.sizes]
    for a, b in zip(rows, rows[1:]):
        b["rss_bytes_per_added_pixel"] = (b["peak_rss_bytes"] - a["peak_rss_bytes"]) / (b["pixels"] - a["pixels"])
    result = {
        "benchmark": "generation_memory",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "configuration": f"{args.bundle}: inference.json" + (" + quick.json" if args.quick else ""),
        "device": args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "overlap": args.overlap,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__},
        "rows": rows,
    }
    print(f"{'size':>7} {'buffer':>7} {'seconds':>8} {'peak RSS MiB':>13} {'CUDA peak MiB':>14} {'RSS B/added px':>15}")
    for r in rows:
        cuda = "-" if r["cuda_peak_bytes"] is None else f"{r['cuda_peak_bytes'] / 2**20:.0f}"
        per_px = r.get("rss_bytes_per_added_pixel")
        print(
            f"{r['size']:>7} {r['output_buffer']:>7} {r['generation_seconds']:>8.1f} "
            f"{r['peak_rss_bytes'] / 2**20:>13.0f} {cuda:>14} {'-' if per_px is None else f'{per_px:.1f}':>15}"
        )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
