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
"""Generation time, peak accelerator memory and achieved convolution throughput of whole-image synthesis.

For each bundle's default configuration (``inference.json``: X-ray 2048², 4 scales, 256² windows; CT 512³, 4 scales,
64³ windows) with random weights (speed does not depend on them), one process times:

- ``ours``: the assembly engine with its fast settings (batched windows padded to ``--sw_batch_size``,
  channels-last, on CUDA bfloat16 autocast, cuDNN benchmark and the accumulator on the device; on a CPU float32),
  default overlap 0.125;
- ``ours_exact``: the engine with its reproducible defaults (one window at a time, float32, ``sw_batch_size`` 4):
  what the batch-invariance guarantee costs;
- ``today``: the path before issue 12 (``benchmarks/legacy_synthesis.py``: MONAI's ``SlidingWindowInferer``, one
  window at a time, host noise and assembly, overlap 0.25, float32);
- ``whole``: every scale's network on the whole image in one pass (no windows; the precision of ``ours``).

Conv FLOPs are counted per window with ``torch.utils.flop_counter`` (on the meta device) and multiplied by the number
of windows; the achieved fraction of the device's peak is that count over the time and a peak from
:data:`PEAK_TFLOPS` (dense tensor-core numbers for the run's precision; ``--peak_tflops`` overrides). Commands::

    python benchmarks/synthesis_speed.py                      # on a GPU: both bundles, every method
    python benchmarks/synthesis_speed.py --device cpu --bundles ct_msgan_3d --methods today ours  # CPU 512³
    python benchmarks/synthesis_speed.py --device cpu --num_scales 2 --patch_size 32 --size_2d 128 --size_3d 64 \\
        --output /tmp/speed.json                              # a check in seconds
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_utils import REPO, command, machine, refuse_existing, write_result  # noqa: E402
from legacy_synthesis import LegacySynthesizer  # noqa: E402

METHODS = ("ours", "ours_exact", "today", "whole")
BUNDLE_DIMS = {"xray_msgan_2d": 2, "ct_msgan_3d": 3}

#: Dense peak TFLOP/s by device name (substring) and precision: bfloat16/float16 and TF32 tensor-core figures
#: (NVIDIA's data sheets, SXM parts, without sparsity). float32 runs on CUDA use TF32 convolutions (PyTorch's default).
PEAK_TFLOPS = {
    "H200": {"bfloat16": 989.0, "float16": 989.0, "float32": 494.0},
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 494.0},
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 156.0},
    "L40S": {"bfloat16": 362.0, "float16": 362.0, "float32": 183.0},
    "A10G": {"bfloat16": 70.0, "float16": 70.0, "float32": 35.0},
}


def peak_tflops(device: torch.device, precision: str, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((p[precision] for key, p in PEAK_TFLOPS.items() if key in name), None)


def build(bundle: str, num_scales: int | None, patch_size: int | None):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(REPO / "bundles" / bundle / "configs" / "inference.json")])
    parser["bundle_root"] = str(REPO / "bundles" / bundle)
    if num_scales:
        parser["num_scales"] = num_scales
    if patch_size:
        parser["patch_size"] = [patch_size] * BUNDLE_DIMS[bundle]
    torch.manual_seed(0)
    model = parser.get_parsed_content("network_def")
    for p in model.patches.parameters():  # random residuals (a fresh patch generator starts as the identity)
        torch.nn.init.normal_(p, std=0.01)
    return model.eval(), tuple(parser.get_parsed_content("patch_size"))


def conv_flops(net: torch.nn.Module, shapes: list[tuple[int, ...] | None]) -> int:
    """FLOPs of one forward pass of ``net`` on inputs of ``shapes`` (None = no input), counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(net).to("meta")
    args = [None if s is None else torch.empty(s, device="meta") for s in shapes]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(*args)
    return int(counter.get_total_flops())


def count_flops(model, sizes, patch, overlap) -> tuple[int, int]:
    """(FLOPs the windows compute, FLOPs of the whole image without overlap) of a whole synthesis."""
    from monai_msgan.synthesis.assembly import window_grid

    base = model.base
    base_flops = conv_flops(base, [None, None, (1, base.noise_channels, *sizes[0])])
    windowed, whole = base_flops, base_flops
    for s in range(1, len(sizes)):
        net = model.scale(s)
        per_window = conv_flops(net, [(1, net.out_channels, *patch), None, (1, net.noise_channels, *patch)])
        windowed += per_window * len(window_grid(sizes[s], patch, overlap))
        whole += per_window * math.prod(sizes[s]) / math.prod(patch)
    return windowed, int(whole)


class WholeImage:
    """Every scale's network on the whole image in one pass: the whole-image generator, without windows."""

    def __init__(self, model, device, amp_dtype, channels_last):
        from monai_msgan.synthesis import MultiScaleSynthesizer

        # the engine's own base and noise; only the patch scales differ
        self.synth = MultiScaleSynthesizer(model, 16, device=device, amp=amp_dtype is not None,
                                           amp_dtype=amp_dtype, channels_last=channels_last)  # fmt: skip

    @torch.no_grad()
    def __call__(self, sizes, seed=0):
        from monai_msgan.synthesis.noise import positional_noise
        from monai_msgan.transforms.pyramid import upsample

        s = self.synth
        image = s._base(seed, sizes[0], None)
        for k in range(1, len(sizes)):
            net = s.generator.scale(k)
            noise = positional_noise(seed, k, net.noise_channels, sizes[k], device=s.device)[None]
            up = upsample(image)[None].contiguous(memory_format=s.memory_format)
            del image
            with s._autocast():
                image = net(up, None, noise.contiguous(memory_format=s.memory_format)).float()[0]
            del up, noise
        return image.cpu()


def make(method, model, patch, device, args):
    from monai_msgan.synthesis import MultiScaleSynthesizer

    cuda = device.type == "cuda"
    amp = cuda if args.amp == "auto" else args.amp == "on"
    low = "bfloat16" if amp else "float32"
    fast = {"batch_invariant": False, "sw_batch_size": args.sw_batch_size, "channels_last": True,
            "amp": amp, "amp_dtype": "bfloat16", "cudnn_benchmark": cuda, "compile": args.compile,
            "reuse_host_memory": True}  # fmt: skip
    if method == "ours":
        synth = MultiScaleSynthesizer(model, patch, device=device, **fast)
        return lambda sizes, seed: synth(sizes[-1], seed), synth.overlap, low
    if method == "ours_exact":
        synth = MultiScaleSynthesizer(model, patch, device=device)
        return lambda sizes, seed: synth(sizes[-1], seed), synth.overlap, "float32"
    if method == "today":
        return LegacySynthesizer(model, patch, overlap=0.25, device=device), 0.25, "float32"
    whole = WholeImage(model, device, "bfloat16" if amp else None, channels_last=True)
    return whole, None, low


def measure(method, model, patch, sizes, device, args) -> dict:
    run, overlap, precision = make(method, model, patch, device, args)
    cuda = device.type == "cuda"
    times, peak = [], None
    try:
        for i in range(args.warmup + args.repeats):
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            out = run(sizes, i)
            if cuda:
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
            if cuda:
                peak = max(peak or 0, torch.cuda.max_memory_allocated())
            assert tuple(out.shape[1:]) == tuple(sizes[-1]) and torch.isfinite(out).all()
            del out
    except torch.OutOfMemoryError as e:
        return {"method": method, "status": "out of memory", "error": str(e)[:300], "precision": precision}
    except Exception as e:  # noqa: BLE001 - one failing method must not lose the others' numbers
        return {"method": method, "status": "failed", "error": f"{type(e).__name__}: {e}"[:500], "precision": precision}
    finally:
        if cuda:
            torch.cuda.empty_cache()
    seconds = statistics.median(times)
    row = {"method": method, "status": "ok", "precision": precision, "overlap": overlap, "seconds": seconds,
           "all_seconds": times, "cuda_peak_bytes": peak}  # fmt: skip
    windowed, whole = count_flops(model, sizes, patch, 0.0 if overlap is None else overlap)
    row["conv_flops"] = whole if overlap is None else windowed
    row["redundancy"] = None if overlap is None else windowed / whole
    row["achieved_tflops"] = row["conv_flops"] / seconds / 1e12
    peak_t = peak_tflops(device, precision, args.peak_tflops)
    row["peak_tflops"] = peak_t
    row["fraction_of_peak"] = None if peak_t is None else row["achieved_tflops"] / peak_t
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundles", nargs="+", choices=sorted(BUNDLE_DIMS), default=list(BUNDLE_DIMS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--size_2d", type=int, default=2048)
    p.add_argument("--size_3d", type=int, default=512)
    p.add_argument("--num_scales", type=int, default=None, help="override the configuration's (small checks)")
    p.add_argument("--patch_size", type=int, default=None, help="override the configuration's (small checks)")
    p.add_argument("--sw_batch_size", type=int, default=None, help="windows per batch of 'ours' (16 CUDA, 8 CPU)")
    p.add_argument("--compile", default=None, help="torch.compile mode for 'ours' (e.g. max-autotune)")
    p.add_argument(
        "--amp",
        choices=["auto", "on", "off"],
        default="auto",
        help="bfloat16 autocast for 'ours' and 'whole' (auto: on CUDA only)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default: 1 on CUDA, 0 on CPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default: 2 on CUDA, 1 on CPU)")
    p.add_argument("--peak_tflops", type=float, default=None, help="the device's peak, if not in the table")
    p.add_argument("--output", default=None, help="JSON (default: benchmarks/results/synthesis_speed_<device>.json)")
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    args.warmup = (1 if cuda else 0) if args.warmup is None else args.warmup
    args.repeats = (2 if cuda else 1) if args.repeats is None else args.repeats
    args.sw_batch_size = (16 if cuda else 8) if args.sw_batch_size is None else args.sw_batch_size
    output = Path(args.output or REPO / "benchmarks" / "results" / f"synthesis_speed_{device.type}.json")
    if refuse_existing(output, args.overwrite):
        return 1
    from monai_msgan.synthesis import MultiScaleSynthesizer

    if cuda:  # start the context and cuDNN before anything is timed
        torch.nn.functional.conv3d(torch.ones(1, 1, 8, 8, 8, device=device), torch.ones(1, 1, 3, 3, 3, device=device))
        torch.cuda.synchronize()
    rows = []
    result = {"benchmark": "synthesis_speed", "command": command(), **machine(str(device)),
              "cudnn": torch.backends.cudnn.version() if cuda else None, "rows": rows}  # fmt: skip
    for bundle in args.bundles:
        nd = BUNDLE_DIMS[bundle]
        model, patch = build(bundle, args.num_scales, args.patch_size)
        size = (args.size_2d if nd == 2 else args.size_3d,) * nd
        sizes = MultiScaleSynthesizer(model, patch, device="cpu").scale_sizes(size)
        for method in args.methods:
            row = {"bundle": bundle, "size": list(size), "patch_size": list(patch),
                   **measure(method, model, patch, sizes, device, args)}  # fmt: skip
            rows.append(row)
            secs = "-" if row.get("seconds") is None else f"{row['seconds']:.2f} s"
            print(f"{bundle} {method}: {row['status']} {secs} {row.get('error', '')}", flush=True)
            write_result(result, output, overwrite=True)  # after every row: a run cut short keeps what it measured
    print(f"\n{'bundle':>14} {'size':>10} {'method':>10} {'prec':>8} {'overlap':>7} {'seconds':>9} {'img/s':>7} "
          f"{'peak GPU MiB':>12} {'redund.':>7} {'TFLOP/s':>8} {'of peak':>7}")  # fmt: skip
    for r in rows:
        ok = r["status"] == "ok"

        def f(key, fmt, row=r, ok=ok):
            v = row.get(key)
            return "-" if (not ok or v is None) else format(v, fmt)

        size = "x".join(map(str, r["size"]))
        ips = "-" if not ok else f"{1 / r['seconds']:.2f}"
        mem = "-" if r.get("cuda_peak_bytes") is None else f"{r['cuda_peak_bytes'] / 2**20:.0f}"
        frac = "-" if r.get("fraction_of_peak") is None else f"{100 * r['fraction_of_peak']:.1f}%"
        print(f"{r['bundle']:>14} {size:>10} {r['method']:>10} {r['precision']:>8} {f('overlap', '')!s:>7} "
              f"{f('seconds', '.3f'):>9} {ips:>7} {mem:>12} {f('redundancy', '.2f'):>7} "
              f"{f('achieved_tflops', '.3g'):>8} {frac:>7}" + ("" if ok else f"  ({r['status']})"))  # fmt: skip
    write_result(result, output, overwrite=True)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
