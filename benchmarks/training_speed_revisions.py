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
"""Training speed of the library at an earlier git revision against the working tree, scale by scale.

A change meant to make training faster is measured here before it lands: `git archive` extracts the library
(`monai_msgan/`) of `--baseline` into a temporary folder, and `training_speed.py` (this working tree's, with this
working tree's bundle configurations) runs in a fresh process once with that library first on `PYTHONPATH` and once
with the working tree's. The two alternate `--repeats` times, so a machine that speeds up or slows down during the
run affects both alike; the table gives each one's median iterations/s per scale and the ratio (working tree /
baseline: above 1 = the working tree trains faster). Options the baseline does not know fail there: compare
revisions whose bundle configurations the working tree's still fit.

    python benchmarks/training_speed_revisions.py --baseline c43b648 --bundles ct_msgan_3d --quick --device cpu
    python benchmarks/training_speed_revisions.py --baseline HEAD~1 --bundles ct_msgan_3d --quick --device cpu \
        --set image_size=[64,64,64] --iterations 2 --repeats 1                           # a quick check
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import BUNDLES, REPO, command, machine, refuse_existing, write_result  # noqa: E402

HERE = Path(__file__).resolve().parent


def extract_library(revision: str, dest: Path) -> str:
    """Extract ``monai_msgan/`` at ``revision`` into ``dest``; returns the full commit id."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"--baseline {revision!r} is not a commit of {REPO}: {e.stderr.strip()}") from e
    archive = dest / "library.tar"
    with open(archive, "wb") as f:
        subprocess.run(["git", "archive", commit, "monai_msgan"], cwd=REPO, check=True, stdout=f)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return commit


# Runs a script with the library under argv[1] importable first: ahead of sys.path, and with the import hooks of an
# editable install (pip install -e, which would otherwise win over PYTHONPATH) removed.
BOOTSTRAP = """
import runpy, sys
library, script = sys.argv[1], sys.argv[2]
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("__editable__")]
sys.path.insert(0, library)
sys.argv = sys.argv[2:]
if sys.argv[0] == "-c":
    exec(sys.argv[1])
else:
    runpy.run_path(script, run_name="__main__")
"""


def measure(library: Path, args: argparse.Namespace, output: Path) -> dict:
    """One run of training_speed.py with ``library``'s monai_msgan imported."""
    cmd = [sys.executable, "-c", BOOTSTRAP, str(library), str(HERE / "training_speed.py")]
    cmd += ["--bundles", *args.bundles, "--output", str(output)]
    cmd += ["--warmup", str(args.warmup), "--iterations", str(args.iterations)]
    cmd += ["--quick"] * args.quick + (["--device", args.device] if args.device else [])
    cmd += ["--scales", *map(str, args.scales)] if args.scales is not None else []
    cmd += ["--set", *args.set] if args.set else []
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"training_speed.py with the library of {library} failed:\n{done.stderr[-3000:]}")
    check = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, str(library), "-c", "import monai_msgan; print(monai_msgan.__file__)"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(check).resolve().is_relative_to(library.resolve()):
        raise RuntimeError(f"the measured library was {check}, not the one under {library}")
    return json.loads(output.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="git revision to compare against (e.g. a commit id, HEAD~1)")
    p.add_argument("--bundles", nargs="+", choices=BUNDLES, default=["ct_msgan_3d"])
    p.add_argument("--quick", action="store_true", help="layer quick.json instead of the default configuration")
    p.add_argument("--warmup", type=int, default=5, help="iterations before the clock starts")
    p.add_argument("--iterations", type=int, default=40, help="timed iterations per scale and run")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs of each library")
    p.add_argument("--scales", type=int, nargs="+", default=None, help="scales to measure (default: all)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    p.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="override config ids (tiny CPU checks)")
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/training_speed_revisions.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = p.parse_args()
    if args.repeats < 1 or args.iterations < 1 or args.warmup < 0:
        raise SystemExit("--repeats and --iterations must be at least 1, --warmup at least 0.")
    output = Path(args.output or REPO / "benchmarks" / "results" / "training_speed_revisions.json")
    if refuse_existing(output, args.overwrite):
        return 1
    speeds: dict[str, dict[tuple[str, int], list[float]]] = {"baseline": {}, "working_tree": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "baseline").mkdir()
        commit = extract_library(args.baseline, tmp / "baseline")
        libraries = {"baseline": tmp / "baseline", "working_tree": REPO}
        for repeat in range(args.repeats):
            for name, library in libraries.items():
                result = measure(library, args, tmp / f"{name}_{repeat}.json")
                for row in (r for b in result["bundles"] for r in b["rows"]):
                    if row["status"] != "ok":
                        raise RuntimeError(f"{row['bundle']} scale {row['scale']} ({name}): {row['status']}")
                    speeds[name].setdefault((row["bundle"], row["scale"]), []).append(row["iterations_per_s"])
                print(f"repeat {repeat + 1}/{args.repeats}: {name} measured", flush=True)
    rows = []
    for key in sorted(speeds["baseline"]):
        base, new = statistics.median(speeds["baseline"][key]), statistics.median(speeds["working_tree"][key])
        rows.append(
            {
                "bundle": key[0],
                "scale": key[1],
                "baseline_iterations_per_s": speeds["baseline"][key],
                "working_tree_iterations_per_s": speeds["working_tree"][key],
                "baseline_median": base,
                "working_tree_median": new,
                "ratio": new / base,
            }
        )
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "monai_msgan"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    )
    result = {
        "benchmark": "training_speed_revisions",
        "command": command(),
        "baseline": {"revision": args.baseline, "commit": commit},
        "working_tree": {"head": head, "library_modified": dirty},
        "quick": args.quick,
        "overrides": args.set,
        "warmup": args.warmup,
        "iterations": args.iterations,
        "repeats": args.repeats,
        **machine(args.device),
        "rows": rows,
    }
    print(f"baseline {commit[:10]} against the working tree (HEAD {head[:10]}{', modified' if dirty else ''}):")
    print(f"{'bundle':<14} {'scale':>5} {'baseline it/s':>13} {'working tree it/s':>17} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['bundle']:<14} {r['scale']:>5} {r['baseline_median']:>13.3f} {r['working_tree_median']:>17.3f} "
            f"{r['ratio']:>6.2f}"
        )
    write_result(result, output, overwrite=True)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
