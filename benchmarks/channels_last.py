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
"""Training speed of every scale in the default (contiguous) and the channels-last memory layout.

The bundle's training configuration is parsed as `monai.bundle run training` parses it, with `channels_last` false
and then true, and each scale's real trainer runs `--warmup` + `--iterations` iterations on one synthetic image
(`training_speed.py`'s measurement). The two layouts alternate `--repeats` times, so that a machine that speeds up
or slows down during the run affects both alike; the table gives each layout's median iterations/s and the ratio
(channels-last / contiguous: above 1 = channels-last is faster). The bundles' `channels_last` option takes one value
or one per scale, so a configuration can use the layout only where this table says it pays.

    python benchmarks/channels_last.py --bundles ct_msgan_3d --quick --device cpu     # the CT demo's configuration
    python benchmarks/channels_last.py --quick --device cpu --set image_size=[64,64,64] --iterations 2 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import BUNDLES, REPO, command, machine, parse_overrides, refuse_existing, write_result  # noqa: E402
from training_speed import measure_bundle  # noqa: E402

LAYOUTS = (("contiguous", False), ("channels_last", True))


def compare_bundle(bundle: str, args: argparse.Namespace, overrides: dict, tmp: Path) -> dict:
    """Median iterations/s per scale and layout over ``args.repeats`` alternating measurements."""
    speeds: dict[str, dict[int, list[float]]] = {name: {} for name, _ in LAYOUTS}
    info: dict = {}
    for repeat in range(args.repeats):
        for name, flag in LAYOUTS:
            folder = tmp / f"{bundle}_{name}_{repeat}"
            folder.mkdir()
            measured = measure_bundle(bundle, args, {**overrides, "channels_last": flag}, folder)
            info = {k: v for k, v in measured.items() if k != "rows"}
            for row in measured["rows"]:
                if row["status"] != "ok":
                    raise RuntimeError(f"{bundle} scale {row['scale']} ({name}): {row['status']}")
                speeds[name].setdefault(row["scale"], []).append(row["iterations_per_s"])
    rows = []
    for scale in sorted(speeds["contiguous"]):
        row = {"bundle": bundle, "scale": scale}
        for name, _ in LAYOUTS:
            row[f"{name}_iterations_per_s"] = speeds[name][scale]
            row[f"{name}_median"] = statistics.median(speeds[name][scale])
        row["ratio"] = row["channels_last_median"] / row["contiguous_median"]
        rows.append(row)
    return {**info, "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", nargs="+", choices=BUNDLES, default=list(BUNDLES))
    p.add_argument("--quick", action="store_true", help="layer quick.json instead of the default configuration")
    p.add_argument("--warmup", type=int, default=5, help="iterations before the clock starts")
    p.add_argument("--iterations", type=int, default=30, help="timed iterations per scale and measurement")
    p.add_argument("--repeats", type=int, default=3, help="measurements per layout (alternating)")
    p.add_argument("--scales", type=int, nargs="+", default=None, help="scales to measure (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--amp", action="store_true", help="mixed precision (the bundle's amp id)")
    p.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="override config ids (tiny CPU checks)")
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/channels_last.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    if args.iterations < 1 or args.warmup < 1 or args.repeats < 1:
        raise SystemExit("--iterations, --warmup and --repeats must be at least 1.")
    output = Path(args.output or REPO / "benchmarks" / "results" / "channels_last.json")
    if refuse_existing(output, args.overwrite):
        return 1
    overrides = parse_overrides(args.set)
    if "channels_last" in overrides:
        raise SystemExit("--set channels_last: this benchmark sets the layout itself.")
    with tempfile.TemporaryDirectory() as tmp:
        results = [compare_bundle(bundle, args, overrides, Path(tmp)) for bundle in args.bundles]
    result = {
        "benchmark": "channels_last",
        "command": command(),
        "quick": args.quick,
        "overrides": overrides,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "amp": args.amp,
        **machine(args.device),
        "bundles": results,
    }
    print(f"{'bundle':<14} {'scale':>5} {'contiguous it/s':>16} {'channels-last it/s':>19} {'ratio':>6}")
    for r in (r for b in results for r in b["rows"]):
        print(
            f"{r['bundle']:<14} {r['scale']:>5} {r['contiguous_median']:>16.2f} {r['channels_last_median']:>19.2f} "
            f"{r['ratio']:>6.2f}"
        )
    write_result(result, output, overwrite=True)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
