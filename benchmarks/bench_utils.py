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
"""Shared by the benchmarks: running a bundle command in a measured child process, and describing the machine."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLES = ("xray_msgan_2d", "ct_msgan_3d")

# Runs `python -m monai.bundle ...` and reports peak RSS and, on CUDA, torch.cuda.max_memory_allocated. With
# BENCH_CUDA_CAP_GIB set, the process may use at most that much GPU memory (set_per_process_memory_fraction), as a
# smaller card would allow. An out-of-memory error is reported as such instead of failing the benchmark.
CHILD = r"""
import json, os, resource, runpy, sys, time
import torch
cap = os.environ.get("BENCH_CUDA_CAP_GIB")
if cap and torch.cuda.is_available():
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, float(cap) * 2**30 / total))
sys.argv = ["monai.bundle"] + sys.argv[1:]
t0 = time.perf_counter()
status = "ok"
try:
    runpy.run_module("monai.bundle", run_name="__main__")
except SystemExit as e:
    if e.code not in (0, None):
        raise
except BaseException as e:
    chain, err = [], e
    while err is not None:
        chain.append(f"{type(err).__name__}: {err}")
        err = err.__cause__ or err.__context__
    text = " | ".join(chain)
    if not any(k in text for k in ("out of memory", "OutOfMemoryError", "MemoryError", "can't allocate memory")):
        raise
    status = "out of memory"
    print("BENCH_ERROR " + text[-500:], flush=True)
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print("BENCH " + json.dumps({"status": status, "seconds": time.perf_counter() - t0,
      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cuda_peak_bytes": cuda}))
"""


def run_measured(args: list[str], memory_limit_gib: float | None = None, cuda_cap_gib: float | None = None) -> dict:
    """Run ``python -m monai.bundle <args>`` in a child process; returns its status, seconds and memory peaks.

    ``memory_limit_gib`` caps the child's address space (RLIMIT_AS), so a size that does not fit fails with an
    out-of-memory error (reported as such) instead of swapping the machine to a halt.
    """

    def limit() -> None:
        if memory_limit_gib:
            n = int(memory_limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (n, n))

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if cuda_cap_gib:
        env["BENCH_CUDA_CAP_GIB"] = str(cuda_cap_gib)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, preexec_fn=limit, cwd=REPO
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")]
    if proc.returncode != 0 or not lines:
        text = proc.stdout[-2000:] + proc.stderr[-4000:]
        empty = {"seconds": None, "peak_rss_bytes": None, "cuda_peak_bytes": None}
        if memory_limit_gib and any(k in text for k in ("MemoryError", "can't allocate memory", "std::bad_alloc")):
            return {"status": "out of memory", **empty}
        if "is too small" in text:  # the model's own size check (e.g. scale 1 smaller than a patch)
            reason = next(ln for ln in text.splitlines()[::-1] if "is too small" in ln)
            return {"status": "too small", "error": reason.strip()[-300:], **empty}
        raise RuntimeError(f"benchmark child failed (exit {proc.returncode}):\n{text}")
    record = json.loads(lines[-1][6:])
    errors = [ln[12:] for ln in proc.stdout.splitlines() if ln.startswith("BENCH_ERROR ")]
    if errors:
        record["error"] = errors[-1]
    return record


def machine(device: str | None = None) -> dict:
    """Device, CPU and versions, for the JSON of a benchmark."""
    import monai
    import torch

    cuda = torch.cuda.is_available() and device != "cpu"
    return {
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "gpu_memory_bytes": torch.cuda.get_device_properties(0).total_memory if cuda else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "monai": monai.__version__},
    }


def parse_overrides(items: list[str]) -> dict:
    """``--set`` items ``ID=JSON`` as a dict: JSON values, bare words as strings.

    Raises:
        SystemExit: an item without ``=``.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects ID=JSON, got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def bundle_args(files: list[str], device: str | None = None) -> list[str]:
    """``--config_file`` with the layered ``files`` as MONAI's list syntax, and ``--device`` when one is asked for."""
    args = ["--config_file", "[" + ",".join(f"'{f}'" for f in files) + "]"]
    return args + (["--device", f"$torch.device('{device}')"] if device else [])


def refuse_existing(path: Path, overwrite: bool) -> bool:
    """True (after saying why on stderr) when ``path`` exists and may not be replaced; checked before any run."""
    if path.exists() and not overwrite:
        print(f"{path} exists; pass --overwrite to replace it (or choose another --output).", file=sys.stderr)
        return True
    return False


def mib(n: float | None) -> str:
    """Bytes as whole MiB for the printed tables; "-" when not measured."""
    return "-" if n is None else f"{n / 2**20:.0f}"


def command() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_result(result: dict, path: str | os.PathLike, overwrite: bool) -> Path:
    """Write the JSON atomically; an existing file is kept unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it (or choose another --output).")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def pyplot():
    """matplotlib.pyplot with a file-only backend; a clear error if matplotlib is missing (the ``bench`` extra).

    Called before a sweep starts, so a missing plotting package does not surface only after the measurements.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit(
            "The benchmark plots need matplotlib: pip install -e '.[bench]' (or pip install matplotlib)."
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically (temporary file, then rename) and close it."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    os.replace(tmp, path)
    return path
