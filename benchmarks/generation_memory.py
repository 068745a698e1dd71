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
"""Peak memory and time of generation versus output size: the multi-scale method against a whole-image generator.

Each (method, size) runs the bundle's own `python -m monai.bundle run inference` in a fresh process, which reports
its peak resident memory (ru_maxrss) and, on CUDA, torch.cuda.max_memory_allocated. Methods:

- ``ours``: inference.json (the multi-scale generator; patch scales in sliding windows);
- ``whole``: inference.json + baseline_whole.json, one U-Net (the configuration's base network) that makes the
  whole image at full resolution in one pass, so its activations grow with the output.

Network weights do not change memory or time, so without --ckpt_dir the generators are freshly initialised from the
configuration. --memory_limit_gib caps each child's address space so that sizes that do not fit fail as "out of
memory" instead of swapping; --cuda_cap_gib limits GPU memory (e.g. 12, a 12 GB card).

    python benchmarks/generation_memory.py --quick --methods ours whole --sizes 512 1024 2048 4096 8192 \
        --output_buffer disk --memory_limit_gib 16
    python benchmarks/generation_memory.py --bundle ct_msgan_3d --quick --methods ours whole \
        --sizes 128 256 512 --output_buffer disk --memory_limit_gib 16
    python benchmarks/generation_memory.py --device cuda --cuda_cap_gib 12 --sizes 2048 4096 8192   # GPU

Prints a table and writes JSON (device, versions, command, one row per method and size) to --output and a plot
(peak memory and time against output size) next to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

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

METHOD_LAYERS = {"ours": [], "whole": ["baseline_whole.json"]}


def config_files(bundle: Path, quick: bool, method: str) -> list[str]:
    names = ["inference.json"] + (["quick.json"] if quick else []) + METHOD_LAYERS[method]
    return [str(bundle / "configs" / n) for n in names]


def init_checkpoints(files: list[str], bundle: Path, ckpt_dir: Path) -> None:
    """Save freshly initialised generators of the configuration (weights do not change memory or time)."""
    from monai.bundle import ConfigParser

    from monai_msgan.utils import generator_path, save_weights

    parser = ConfigParser()
    parser.read_config(files)
    parser["bundle_root"] = str(bundle)
    model = parser.get_parsed_content("network_def")
    for s in range(model.num_scales):
        save_weights(model.scale(s).state_dict(), generator_path(ckpt_dir, s))


def run_size(method: str, size: int, args, ckpt_dir: Path, out_dir: Path) -> dict:
    files = config_files(args.bundle_dir, args.quick, method)
    out = out_dir / f"{method}_{size}"
    cmd = [
        "run", "inference",
        "--bundle_root", str(args.bundle_dir),
        "--ckpt_dir", str(ckpt_dir), "--output_dir", str(out),
        "--output_size", "[" + ",".join([str(size)] * args.spatial_dims) + "]",
        "--sw_batch_size", str(args.sw_batch_size),
        # memory sweep: sizes beyond the trained one are a repeated, texture-like field of view (stated in the docs)
        "--extend_field_of_view", "true",
        # the whole-image generator cannot stream: its output exists in one piece
        "--output_buffer", args.output_buffer if method == "ours" else "memory",
    ]  # fmt: skip
    if args.overlap is not None:
        cmd += ["--overlap", str(args.overlap)]
    cmd += bundle_args(files, args.device)
    record = run_measured(cmd, args.memory_limit_gib, args.cuda_cap_gib)
    row = {"method": method, "size": size, "pixels": size**args.spatial_dims, **record}
    if record["status"] == "ok":
        gen = json.loads(next(out.glob("*s.json")).read_text())
        row["output_buffer"] = gen["output_buffer"]
        row["generation_seconds"] = gen["samples"][0]["seconds"]
    for f in sorted(out.glob("*"), reverse=True) if out.exists() else []:
        f.unlink()  # the images are not needed; keep the temporary disk small
    return row


def plot(result: dict, path: Path) -> None:
    plt = pyplot()
    rows = result["rows"]
    cuda = any(r.get("cuda_peak_bytes") for r in rows)
    unit = "pixels" if result["spatial_dims"] == 2 else "voxels"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]
        failed = [r for r in rows if r["method"] == method and r["status"] == "out of memory"]
        x = [r["pixels"] for r in ok]
        mem = [(r["cuda_peak_bytes"] if cuda else r["peak_rss_bytes"]) / 2**20 for r in ok]
        (line,) = axes[0].plot(x, mem, "o-", label=method)
        axes[1].plot(x, [r["generation_seconds"] for r in ok], "o-", label=method)
        if failed:
            limit = result["memory_limit_gib"] * 1024 if result.get("memory_limit_gib") else max(mem, default=1)
            axes[0].plot([r["pixels"] for r in failed], [limit] * len(failed), "x", ms=10, color=line.get_color(),
                         label=f"{method}: out of memory")  # fmt: skip
    if result.get("memory_limit_gib") and not cuda:
        axes[0].axhline(result["memory_limit_gib"] * 1024, ls=":", color="grey", label="memory limit")
    axes[0].set_ylabel("peak CUDA memory (MiB)" if cuda else "peak RSS of the process (MiB)")
    axes[1].set_ylabel("seconds per sample")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"output {unit}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['configuration']} on {result['gpu'] or result['cpu'] + ' CPU'}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", choices=BUNDLES, default=BUNDLES[0])
    p.add_argument("--methods", nargs="+", choices=sorted(METHOD_LAYERS), default=["ours"])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096], help="side of the square/cube")
    p.add_argument("--output_buffer", choices=["auto", "memory", "disk"], default="auto", help="ours: where the "
                   "finest scale is assembled")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="layer quick.json (the demo model)")
    p.add_argument("--ckpt_dir", default=None, help="trained checkpoints of ours (default: freshly initialised)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--sw_batch_size", type=int, default=4)
    p.add_argument("--overlap", type=float, default=None, help="window overlap (default: the bundle's)")
    p.add_argument("--memory_limit_gib", type=float, default=None, help="address-space cap of each run")
    p.add_argument("--cuda_cap_gib", type=float, default=None, help="GPU memory cap of each run (CUDA only)")
    p.add_argument("--output", default=None, help="JSON file (default: benchmarks/results/<bundle>_memory.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    args.bundle_dir = REPO / "bundles" / args.bundle
    args.spatial_dims = 3 if args.bundle == "ct_msgan_3d" else 2
    output = Path(args.output or REPO / "benchmarks" / "results" / f"{args.bundle}_memory.json")
    if refuse_existing(output, args.overwrite):
        return 1
    pyplot()  # fail now, not after the sweep, if matplotlib is missing

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            ckpt = Path(args.ckpt_dir) if (args.ckpt_dir and method == "ours") else Path(tmp) / f"models_{method}"
            if not (args.ckpt_dir and method == "ours"):
                init_checkpoints(config_files(args.bundle_dir, args.quick, method), args.bundle_dir, ckpt)
            for size in args.sizes:
                rows.append(run_size(method, size, args, ckpt, Path(tmp) / "out"))
                r = rows[-1]
                print(f"{method} {size}: {r['status']}", flush=True)
    for method in args.methods:
        ok = [r for r in rows if r["method"] == method and r["status"] == "ok"]
        for a, b in zip(ok, ok[1:]):
            b["rss_bytes_per_added_pixel"] = (b["peak_rss_bytes"] - a["peak_rss_bytes"]) / (b["pixels"] - a["pixels"])
    result = {
        "benchmark": "generation_memory",
        "command": command(),
        "configuration": f"{args.bundle}: inference.json" + (" + quick.json" if args.quick else ""),
        "spatial_dims": args.spatial_dims,
        "overlap": args.overlap,
        "memory_limit_gib": args.memory_limit_gib,
        "cuda_cap_gib": args.cuda_cap_gib,
        **machine(args.device),
        "rows": rows,
    }
    print(
        f"{'method':>6} {'size':>6} {'status':>14} {'buffer':>7} {'seconds':>8} {'peak RSS MiB':>13} "
        f"{'CUDA peak MiB':>14} {'RSS B/added px':>15}"
    )
    for r in rows:
        cuda = mib(r.get("cuda_peak_bytes"))
        per_px = r.get("rss_bytes_per_added_pixel")
        rss = mib(r["peak_rss_bytes"])
        secs = "-" if r.get("generation_seconds") is None else f"{r['generation_seconds']:.1f}"
        print(
            f"{r['method']:>6} {r['size']:>6} {r['status']:>14} {r.get('output_buffer', '-'):>7} {secs:>8} {rss:>13} "
            f"{cuda:>14} {'-' if per_px is None else f'{per_px:.1f}':>15}"
        )
    write_result(result, output, overwrite=True)
    plot(result, output.with_suffix(".png"))
    print(f"wrote {output} and {output.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
