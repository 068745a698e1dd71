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
"""Quality against iterations for a bundle's default (not quick) configuration, within a wall-clock budget.

Every scale trains in its own process at the same time (scales are independent by design: ``train_scale``), in
stages: each stage continues the previous one's checkpoints up to a larger fraction of the configured
``num_iterations``, then the model is evaluated (``evaluate.json``: SWD, intensity metrics, seam score, diversity)
and its panel kept. The first stage is short; it measures the speed, and later stages are sized to fill
``--budget`` seconds. Meant for a GPU (``make demo``-sized data, default sizes: 2048² X-rays, 512³ CT):

    python benchmarks/training_progress.py --task xray --dataset_dir data/xray_demo --budget 400 \
        --output benchmarks/results/training_progress_xray_gpu.json
    python benchmarks/training_progress.py --task ct --dataset_dir data/ct_demo --budget 400 \
        --output benchmarks/results/training_progress_ct_gpu.json

The CT demo has one volume, so CT is evaluated against that training volume (said in the JSON); the X-ray demo
holds out one view. Writes --output (device, versions, command, one record per stage: iterations per scale, seconds,
per-scale peak memory, metrics) after every stage, and a panel PNG beside it (one labelled row per stage: real |
sample | sample | 4x zoom). ``--iterations_factor``-like smoke runs on CPU: ``--overrides`` with a quick layer.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import CHILD, REPO, bundle_args, command, machine, parse_overrides, refuse_existing, write_result  # noqa: E402
from experiments import labelled_panels  # noqa: E402

TASKS = {
    "xray": {"bundle": "xray_msgan_2d", "eval_samples": 4, "held_out": "validation"},
    "ct": {"bundle": "ct_msgan_3d", "eval_samples": 2, "held_out": "training"},
}
STARTUP_SECONDS = 25.0  # process start, imports, data loading: not part of the per-iteration cost


def _configs(bundle: Path, names: list[str], extra: list[str]) -> list[str]:
    return [str(bundle / "configs" / n) for n in names] + extra


def _scale_processes(bundle: Path, layers: list[str], args: dict, num_scales: int, threads: int) -> list:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}
    procs = []
    for k in range(num_scales):
        cmd = [sys.executable, "-c", CHILD, "run", "training", *bundle_args(_configs(bundle, ["train.json"], layers))]
        cmd += ["--bundle_root", str(bundle), "--train_scale", str(k)]
        for key, v in args.items():
            cmd += [f"--{key}", v if isinstance(v, str) else json.dumps(v)]
        log = open(Path(args["log_dir"]) / f"train_scale{k}.log", "a")
        procs.append((k, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO), log))
    return procs


def _wait(procs: list, log_dir: Path) -> dict:
    peaks = {}
    for k, p, log in procs:
        rc = p.wait()
        log.close()
        text = (log_dir / f"train_scale{k}.log").read_text()
        if rc != 0:
            raise RuntimeError(f"scale {k} failed (exit {rc}):\n{text[-3000:]}")
        bench = [ln for ln in text.splitlines() if ln.startswith("BENCH ")]
        rec = json.loads(bench[-1][6:]) if bench else {}
        peaks[k] = {"seconds": round(rec.get("seconds", 0.0), 1), "cuda_peak_gib": _gib(rec.get("cuda_peak_bytes"))}
        peaks[k]["curve"] = training_curve(text)
    return peaks


_LOGGED = re.compile(r"Iter: (\d+)/\d+ -- (.*)$")
_VALUE = re.compile(r"(\w+): (-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")


def training_curve(log_text: str, max_points: int = 60) -> list[dict]:
    """The logged training values of a scale (``Iter: i/n -- key: value ...`` lines), at most ``max_points`` of them
    evenly spread, the last one always kept: the augmentation probability and losses that tell a diverging
    discriminator or an augmentation at its cap from a generator that collapsed on its own."""
    points = []
    for line in log_text.splitlines():
        m = _LOGGED.search(line)
        if not m:
            continue
        values = {"iteration": int(m.group(1))}
        values.update({key: float(v) for key, v in _VALUE.findall(m.group(2))})
        points.append(values)
    if len(points) > max_points:
        step = len(points) / max_points
        points = [points[int(i * step)] for i in range(max_points - 1)] + [points[-1]]
    return points


def _gib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**30, 2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--dataset_dir", required=True)
    p.add_argument("--work_dir", default=None, help="models, logs and evaluations (default outputs/progress_<task>)")
    p.add_argument("--budget", type=float, default=400.0, help="seconds for training and evaluation together")
    p.add_argument("--first_fraction", type=float, default=0.01, help="first stage: this share of num_iterations")
    p.add_argument("--max_stages", type=int, default=4)
    p.add_argument("--overrides", nargs="*", default=[], help="extra config layers (e.g. a quick layer for smoke)")
    p.add_argument("--set", nargs="*", default=[], metavar="ID=JSON", help="config ids to override, e.g. r1_gamma=1")
    p.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 8), help="CPU threads per scale")
    p.add_argument("--output", required=True)
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args()
    out = Path(a.output)
    if refuse_existing(out, a.overwrite):
        return 1
    t_start = time.perf_counter()
    task = TASKS[a.task]
    bundle = REPO / "bundles" / task["bundle"]
    work = Path(a.work_dir or REPO / "outputs" / f"progress_{a.task}")
    work.mkdir(parents=True, exist_ok=True)
    overrides = [str(Path(o).resolve()) for o in a.overrides]
    if a.set:
        values = parse_overrides(a.set)
        (work / "set.json").write_text(json.dumps(values, indent=2))
        overrides.append(str(work / "set.json"))

    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(_configs(bundle, ["train.json"], overrides))
    default_iters = [int(i) for i in _per_scale(parser["num_iterations"], int(parser["num_scales"]))]
    num_scales = len(default_iters)
    result = {
        "benchmark": "training_progress",
        "task": a.task,
        "bundle": task["bundle"],
        "configs": ["train.json", *[Path(o).name for o in a.overrides]],
        "set": a.set,
        "configured_num_iterations": default_iters,
        "evaluated_against": "held-out view (validation)" if task["held_out"] == "validation" else
        "the training volume itself (the CT demo has one volume: no held-out CT)",
        "machine": machine(),
        "command": command(),
        "budget_seconds": a.budget,
        "stages": [],
    }  # fmt: skip
    panels: list[tuple[str, Path]] = []
    fraction, unit_seconds, eval_seconds = a.first_fraction, None, None
    for stage in range(a.max_stages):
        iters = [max(1, round(n * fraction)) for n in default_iters]
        layer = work / f"stage{stage}.json"
        layer.write_text(json.dumps({"num_iterations": iters, "save_interval": 100000, "preview_interval": 100000}))
        args = {"dataset_dir": str(Path(a.dataset_dir).resolve()), "ckpt_dir": str(work / "models")}
        args["log_dir"] = str(work / "logs")
        Path(args["log_dir"]).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        print(f"[{a.task}] stage {stage}: training to {iters} ...", flush=True)
        peaks = _wait(_scale_processes(bundle, [*overrides, str(layer)], args, num_scales, a.threads), work / "logs")
        train_s = time.perf_counter() - t0
        prev = 0.0 if stage == 0 else result["stages"][-1]["fraction"]
        unit_seconds = max(1e-3, train_s - STARTUP_SECONDS) / (fraction - prev)
        t1 = time.perf_counter()
        eval_dir = work / f"eval_stage{stage}"
        eargs = {**args, "eval_output_dir": str(eval_dir), "overwrite": True, "num_eval_samples": task["eval_samples"]}
        eargs.pop("log_dir")
        if task["held_out"] == "training":
            eargs["eval_datalist"] = "$monai_msgan.data.load_datalist(@dataset_dir, 'training')"
        cmd = [sys.executable, "-m", "monai.bundle", "run", "evaluating"]
        cmd += bundle_args(_configs(bundle, ["inference.json", "evaluate.json"], overrides))
        cmd += ["--bundle_root", str(bundle)]
        for key, v in eargs.items():
            cmd += [f"--{key}", v if isinstance(v, str) else json.dumps(v)]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        (work / f"eval_stage{stage}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"evaluation failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        eval_seconds = time.perf_counter() - t1
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        result["stages"].append(
            {
                "stage": stage,
                "fraction": round(fraction, 4),
                "num_iterations": iters,
                "train_seconds": round(train_s, 1),
                "eval_seconds": round(eval_seconds, 1),
                "per_scale": peaks,
                "metrics": metrics,
            }
        )
        write_result(result, out, overwrite=True)  # refused at the start unless --overwrite
        panels.append((f"stage {stage}: iterations {iters}", eval_dir / "panel.png"))
        _panels(panels, out.with_suffix(".png"))
        m = metrics
        print(
            f"[{a.task}] stage {stage}: {iters} in {train_s:.0f}s (+{eval_seconds:.0f}s eval): SWD "
            f"{m['swd_x1e3_mean']:.1f}, diversity {m.get('diversity', {}).get('mean')}, intensity "
            f"{m['intensity']['distance_to_real']}",
            flush=True,
        )
        for k, rec in peaks.items():
            last = rec["curve"][-1] if rec["curve"] else {}
            print(f"    scale {k}: last logged {json.dumps(last)}", flush=True)
        if fraction >= 1.0:
            break
        left = a.budget - (time.perf_counter() - t_start) - 1.2 * eval_seconds - STARTUP_SECONDS - 10.0
        nxt = min(1.0, fraction + left / unit_seconds)
        if stage < a.max_stages - 2:
            nxt = min(nxt, fraction * 5)  # keep a middle point on the curve
        if nxt < fraction * 1.3:
            break
        fraction = nxt
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


def _per_scale(value, n: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _panels(panels: list[tuple[str, Path]], path: Path, width: int = 2048) -> None:
    """The labelled stage panels, each scaled to ``width`` pixels."""
    from PIL import Image

    small = []
    for label, p in panels:
        img = Image.open(p)
        if img.width > width:
            img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        q = p.with_name(p.stem + "_small.png")
        img.save(q)
        small.append((label, q))
    labelled_panels(small, path)


if __name__ == "__main__":
    sys.exit(main())
