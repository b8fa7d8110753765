#!/usr/bin/env python
"""Time one training step (forward + backward) of the scratch cells against torch.nn.

For each cell (rnn = tanh RNN, gru, lstm) and size, the scratch module (gradient-norm recording
on, and off) and the fused torch.nn module with the same weights run interleaved, round after
round, so that a noisy machine slows them alike; the table shows medians and the ratio
scratch / torch.nn (median of the per-round ratios, with its interquartile range as a noise
gauge). Also measured: the first call of the scratch module minus its steady-state time (what
compiling the step graphs cost), and the peak memory of one step (CPU: peak-RSS increase in a
fresh subprocess, malloc forced to return freed blocks; CUDA: torch.cuda.max_memory_allocated).

    python scripts/bench_cells.py                       # CPU, 2 threads, all sizes
    python scripts/bench_cells.py --device cuda --json bench.json
    python scripts/bench_cells.py --device cuda --autocast bf16 --sizes ref,fastrnns
    python scripts/bench_cells.py --sizes ref --cells gru --repeats 40
    python scripts/bench_cells.py --cold-cache          # compile time with an empty inductor cache
    python scripts/bench_cells.py --scan                # minGRU/minLSTM scans vs the scratch GRU

``--compare SRC`` runs the timing (no memory) in fresh processes, alternately with ``SRC`` (another
checkout's ``src``, the "old" arm) and with this checkout's, ``--processes`` times per arm, cell,
size and thread count in ``--threads-list``, and prints both arms side by side: the median over
processes of each process's median ratio.

    python scripts/bench_cells.py --compare /tmp/old/src --cells lstm,gru \
        --sizes quickstart,h64,b16,ref --threads-list 2,1 --processes 2 --repeats 9

``--scan`` times instead, at B=64 I=32 H=128 and T in ``--scan-lengths``, one training step of
minGRU and minLSTM in their parallel (linear-space scan), log-space and sequential modes against
the scratch GRU (all compiled, recording dL/dh_t), interleaved round by round.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {  # name: (B, T, I, H)
    "ref": (64, 100, 32, 128),
    "h256": (64, 100, 32, 256),
    "h512": (64, 100, 32, 512),
    "t500": (64, 500, 32, 128),
    "b16": (16, 100, 32, 128),
    "quickstart": (64, 50, 2, 64),  # make run's size (the adding problem at T = 50)
    "h64": (64, 30, 16, 64),
    "fastrnns": (64, 100, 512, 512),  # the setting of PyTorch's fastrnns benchmarks (I = H = 512)
}
CELLS = ("rnn", "gru", "lstm")


def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--sizes", default=",".join(SIZES), help=f"any of {', '.join(SIZES)}")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds per size and cell")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--no-compile", action="store_true", help="time the eager scratch path")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="also time the scratch cells with each layer's loops captured as CUDA\n"
                        "graphs (RNNLAB_CUDA_GRAPHS=1; --device cuda only): column 'graphs'")
    p.add_argument("--autocast", default="none", choices=["none", "bf16", "fp16"],
                   help="run every implementation's step under torch.autocast with this dtype")
    p.add_argument("--clock", default="wall", choices=["wall", "process"],
                   help="wall: elapsed time (default); process: CPU time of this process, which a\n"
                        "busy machine hardly disturbs (meaningful with --threads 1)")
    p.add_argument("--cold-cache", action="store_true",
                   help="use an empty TorchInductor cache (cold compile time)")
    p.add_argument("--scan", action="store_true",
                   help="time minGRU/minLSTM scans against the scratch GRU (see above)")
    p.add_argument("--scan-lengths", default="128,512,1024,4096")
    p.add_argument("--compare", default=None, metavar="SRC",
                   help="old vs new in fresh processes (see above); SRC: the old checkout's src")
    p.add_argument("--threads-list", default=None, help="--compare: thread counts, e.g. 2,1")
    p.add_argument("--processes", type=int, default=2, help="--compare: processes per arm")
    p.add_argument("--src", default=None, help=argparse.SUPPRESS)  # which src a worker imports
    p.add_argument("--_memory", nargs=3, metavar=("CELL", "SIZE", "IMPL"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _setup(args):
    if args.cold_cache and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnlab_inductor_")
    src = Path(args.src) if args.src else Path(__file__).resolve().parents[1] / "src"
    if src.is_dir() and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    import torch

    from rnnlab.cells import compile_cache

    torch.set_num_threads(args.threads)
    # compile every new shape at its first call (the cells otherwise run a further shape eagerly
    # until it recurs), so the first call of each size measures its compilation
    compile_cache._CompileState.compile_after = 1
    return torch


def _build(torch, cell, size, device, compile, record=True):
    from rnnlab.cells import GRU, LSTM, RNN

    B, T, I, H = SIZES[size]
    scratch_cls = {"rnn": RNN, "gru": GRU, "lstm": LSTM}[cell]
    torch_cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    ref = torch_cls(I, H, device=device)
    ours = scratch_cls(I, H, device=device, compile=compile, record_grad_norms=record)
    ours.load_state_dict(ref.state_dict())
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(T, B, I, generator=gen).to(device).requires_grad_()
    target = torch.randn(T, B, H, generator=gen).to(device)
    return ref, ours, x, target


AUTOCAST = None  # (device type, dtype) from --autocast, or None


def _step(torch, module, x, target):
    """One training step's forward + backward (gradients cleared outside the timing)."""
    if AUTOCAST is None:
        out, _ = module(x)
    else:
        with torch.autocast(AUTOCAST[0], dtype=AUTOCAST[1]):
            out, _ = module(x)
    loss = (out.float() * target).mean()
    loss.backward()


CLOCK = time.perf_counter


def _timed(torch, fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = CLOCK()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return CLOCK() - t0


def _clear(module, x):
    for p in module.parameters():
        p.grad = None
    x.grad = None


def bench_one(torch, args, cell, size):
    compile = not args.no_compile
    ref, ours, x, target = _build(torch, cell, size, args.device, compile)
    ours_off = _build(torch, cell, size, args.device, compile, record=False)[1]
    ours_off.load_state_dict(ours.state_dict())
    impls = {"torch": ref, "scratch": ours, "scratch_norec": ours_off}
    if args.cuda_graphs:
        impls["scratch_graphs"] = ours  # the same module, its loops as CUDA graphs

    t0 = time.perf_counter()  # compile time is wall time whatever --clock
    _step(torch, ours, x, target)  # compiles
    first = time.perf_counter() - t0
    _clear(ours, x)
    def step(k):
        os.environ["RNNLAB_CUDA_GRAPHS"] = "1" if k == "scratch_graphs" else "0"
        _step(torch, impls[k], x, target)

    for _ in range(args.warmup):  # the first scratch_graphs step captures its graphs
        for k, m in impls.items():
            step(k)
            _clear(m, x)
    times = {k: [] for k in impls}
    order = list(impls)
    for r in range(args.repeats):
        for k in order[r % len(order) :] + order[: r % len(order)]:  # rotate who goes first
            times[k].append(_timed(torch, lambda k=k: step(k), args.device))
            _clear(impls[k], x)
    os.environ["RNNLAB_CUDA_GRAPHS"] = "0"
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    best = {k: min(v) * 1e3 for k, v in times.items()}
    ratios = [s / t for s, t in zip(times["scratch"], times["torch"])]
    rec_cost = [s / n for s, n in zip(times["scratch"], times["scratch_norec"])]
    def q(v):
        return statistics.quantiles(v, n=4) if len(v) >= 4 else [min(v), 0, max(v)]
    res = {
        "cell": cell, "size": size, "B": SIZES[size][0], "T": SIZES[size][1],
        "I": SIZES[size][2], "H": SIZES[size][3],
        "torch_ms": med["torch"], "scratch_ms": med["scratch"],
        "scratch_norec_ms": med["scratch_norec"],
        "ratio": statistics.median(ratios), "ratio_q1": q(ratios)[0], "ratio_q3": q(ratios)[2],
        "ratio_of_medians": med["scratch"] / med["torch"],
        "torch_best_ms": best["torch"], "scratch_best_ms": best["scratch"],
        "ratio_of_best": best["scratch"] / best["torch"],
        "recording_cost": statistics.median(rec_cost) - 1.0,
        "first_call_s": first, "compile_s": max(first - med["scratch"] / 1e3, 0.0),
        "clock": args.clock,
        "times_ms": {k: [round(t * 1e3, 3) for t in v] for k, v in times.items()},
    }
    if args.cuda_graphs:
        graphs = [g / t for g, t in zip(times["scratch_graphs"], times["torch"])]
        res.update(scratch_graphs_ms=med["scratch_graphs"], graphs_ratio=statistics.median(graphs),
                   graphs_ratio_q1=q(graphs)[0], graphs_ratio_q3=q(graphs)[2])
    return res


SCAN_IMPLS = ("gru", "mingru", "mingru_log", "mingru_seq", "minlstm", "minlstm_seq")


def bench_scan(torch, args, steps):
    """One row of --scan: median ms per training step of each implementation at length T."""
    from rnnlab.cells import GRU, MinGRU, MinLSTM

    B, _, I, H = SIZES["ref"]
    compile = not args.no_compile
    build = {
        "gru": lambda: GRU(I, H, compile=compile),
        "mingru": lambda: MinGRU(I, H, compile=compile),
        "mingru_log": lambda: MinGRU(I, H, compile=compile, mode="log"),
        "mingru_seq": lambda: MinGRU(I, H, compile=compile, mode="sequential"),
        "minlstm": lambda: MinLSTM(I, H, compile=compile),
        "minlstm_seq": lambda: MinLSTM(I, H, compile=compile, mode="sequential"),
    }
    impls = {k: build[k]().to(args.device) for k in SCAN_IMPLS}
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(steps, B, I, generator=gen).to(args.device).requires_grad_()
    target = torch.randn(steps, B, H, generator=gen).to(args.device)
    first = {}
    for k, m in impls.items():
        t0 = time.perf_counter()
        _step(torch, m, x, target)  # compiles
        first[k] = time.perf_counter() - t0
        _clear(m, x)
    rounds = args.repeats if steps <= 512 else max(3, args.repeats // 3)
    times = {k: [] for k in impls}
    order = list(impls)
    for r in range(rounds):
        shift = r % len(order)
        for k in order[shift:] + order[:shift]:
            m = impls[k]
            times[k].append(_timed(torch, lambda m=m: _step(torch, m, x, target), args.device))
            _clear(m, x)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    # per-round ratios: the GRU's time over each other implementation's
    speedup = {k: statistics.median(g / t for g, t in zip(times["gru"], times[k]))
               for k in impls if k != "gru"}
    return {"T": steps, "B": B, "I": I, "H": H, "rounds": rounds, "ms": med,
            "gru_over": speedup, "first_call_s": first,
            "times_ms": {k: [round(t * 1e3, 3) for t in v] for k, v in times.items()}}


def scan_main(torch, args, info):
    lengths = [int(t) for t in args.scan_lengths.split(",") if t.strip()]
    header = (f"{'T':>5} | " + " ".join(f"{k:>11}" for k in SCAN_IMPLS)
              + " | GRU / minGRU parallel, log, seq | GRU / minLSTM parallel, seq")
    print("# median ms per training step (forward + backward, dL/dh_t recorded), B=64 I=32 H=128")
    print(header)
    print("-" * len(header))
    results = []
    for steps in lengths:
        r = bench_scan(torch, args, steps)
        results.append(r)
        o = r["gru_over"]
        print(f"{steps:>5} | " + " ".join(f"{r['ms'][k]:9.1f}ms" for k in SCAN_IMPLS)
              + f" | {o['mingru']:5.1f}x {o['mingru_log']:5.1f}x {o['mingru_seq']:5.1f}x"
              + f" | {o['minlstm']:5.1f}x {o['minlstm_seq']:5.1f}x", flush=True)
    return results


def _peak_rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory_child(torch, args):
    """Runs in a subprocess: peak memory (MiB) of one training step of one implementation."""
    cell, size, impl = args._memory
    ref, ours, x, target = _build(torch, cell, size, args.device, not args.no_compile)
    m = ref if impl == "torch" else ours
    _step(torch, m, x, target)  # warm up (and compile)
    _clear(m, x)
    if args.device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        _step(torch, m, x, target)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        print(json.dumps({"peak_mib": peak / 2**20}))
        return
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    base = _rss_kib()
    _step(torch, m, x, target)
    print(json.dumps({"peak_mib": (_peak_rss_kib() - base) / 1024}))


def measure_memory(args, cell, size, impl):
    cmd = [sys.executable, __file__, "--_memory", cell, size, impl, "--device", args.device,
           "--threads", str(args.threads), "--autocast", args.autocast]
    if args.no_compile:
        cmd.append("--no-compile")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
    except Exception as err:  # noqa: BLE001  (memory is a side measurement: report, don't die)
        print(f"  (memory measurement failed for {cell}/{size}/{impl}: {err})", file=sys.stderr)
        return None


def _cpu_pressure():
    """Linux PSI: share of time some task waited for a CPU (avg10, avg60, avg300), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            fields = dict(kv.split("=") for kv in f.readline().split()[1:])
        return [float(fields[k]) for k in ("avg10", "avg60", "avg300")]
    except (OSError, KeyError, ValueError):
        return None


def machine_info(torch, args):
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    info = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(), "torch": torch.__version__,
        "platform": platform.platform(), "cpu": cpu, "nproc": os.cpu_count(),
        "threads": args.threads, "device": args.device,
        "compile": not args.no_compile, "cold_cache": bool(args.cold_cache),
        "autocast": args.autocast,
        "loadavg_start": os.getloadavg(), "cpu_pressure_start": _cpu_pressure(),
        "clock": args.clock,
        # glibc's trimming changes oneDNN's LSTM time by ~30% (docs/benchmarks.md): say which
        "allocator": {k: v for k, v in os.environ.items()
                      if k.startswith("MALLOC_") or k == "LD_PRELOAD"} or "default glibc",
    }
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def compare_main(args) -> None:
    """Old and new arms alternately in fresh processes; one table of both."""
    new_src = str(Path(__file__).resolve().parents[1] / "src")
    arms = {"old": args.compare, "new": new_src}
    threads = [int(t) for t in (args.threads_list or str(args.threads)).split(",")]
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    print(f"# --compare: old = {args.compare}, new = {new_src}; {args.processes} processes per "
          f"arm, {args.repeats} rounds each; load average {os.getloadavg()}")
    rows = []
    for n in threads:
        for size in sizes:
            for cell in cells:
                got = {arm: [] for arm in arms}
                for k in range(args.processes):
                    order = list(arms) if k % 2 == 0 else list(arms)[::-1]
                    for arm in order:
                        with tempfile.TemporaryDirectory() as tmp:
                            out = Path(tmp) / "r.json"
                            cmd = [sys.executable, __file__, "--src", arms[arm], "--cells", cell,
                                   "--sizes", size, "--threads", str(n), "--repeats",
                                   str(args.repeats), "--warmup", str(args.warmup),
                                   "--no-memory", "--json", str(out)]
                            proc = subprocess.run(cmd, capture_output=True, text=True)
                            if proc.returncode:
                                sys.exit(f"{arm} {cell} {size}: {proc.stderr.strip()[-400:]}")
                            got[arm].append(json.loads(out.read_text())["results"][0])
                med = {arm: {key: statistics.median(r[key] for r in rs)
                             for key in ("ratio", "scratch_ms", "torch_ms")}
                       for arm, rs in got.items()}
                rows.append((cell, size, n, med, got))
                B, T, I, H = SIZES[size]
                print(f"| {cell} | {size} (B={B} T={T} I={I} H={H}) | {n} | "
                      f"{med['old']['ratio']:.2f}x | {med['new']['ratio']:.2f}x | "
                      f"{med['old']['scratch_ms']:.2f} -> {med['new']['scratch_ms']:.2f} | "
                      f"{med['old']['torch_ms']:.2f} / {med['new']['torch_ms']:.2f} | "
                      + " ".join(f"{r['ratio']:.2f}" for r in got["new"]) + " |", flush=True)
    print(f"# load average end {os.getloadavg()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([
            {"cell": c, "size": s, "threads": n, "median": m, "processes": g}
            for c, s, n, m, g in rows], indent=1))


def main(argv=None):
    global CLOCK
    args = _parse(argv)
    if args.compare:
        print("| cell | size | threads | old ratio | new ratio | scratch ms old -> new | "
              "torch.nn ms (old arm / new arm) | new ratio per process |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        return compare_main(args)
    torch = _setup(args)
    if args.clock == "process":
        CLOCK = time.process_time
    global AUTOCAST
    if args.autocast != "none":
        AUTOCAST = (args.device, {"bf16": torch.bfloat16, "fp16": torch.float16}[args.autocast])
    if args._memory:
        return memory_child(torch, args)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available")
    if args.cuda_graphs and args.device != "cuda":
        sys.exit("--cuda-graphs needs --device cuda (CUDA graphs capture GPU work)")
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    for c in cells:
        if c not in CELLS:
            sys.exit(f"--cells: {c!r} is not one of {', '.join(CELLS)}")
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"--sizes: {s!r} is not one of {', '.join(SIZES)}")
    info = machine_info(torch, args)
    print(f"# {info['date']}  torch {info['torch']}  {info['cpu']}  nproc={info['nproc']}  "
          f"threads={args.threads}  device={args.device}  compile={info['compile']}  "
          f"autocast={args.autocast}  allocator={info['allocator']}")
    if args.scan:
        results = scan_main(torch, args, info)
        _finish(info, args, results)
        return
    results = []
    header = (f"{'cell':5} {'size':8} {'B':>3} {'T':>4} {'H':>4} | {'torch.nn':>9} {'scratch':>9} "
              f"{'ratio':>6} {'[q1-q3]':>11} | {'best':>5} {'best':>5} {'ratio':>5} | "
              f"{'rec.cost':>8} | {'compile':>7} | {'mem torch':>9} {'mem ours':>9}"
              + (f" | {'graphs':>9} {'ratio':>6}" if args.cuda_graphs else ""))
    print(header)
    print("-" * len(header))
    for size in sizes:
        for cell in cells:
            r = bench_one(torch, args, cell, size)
            if not args.no_memory:
                r["torch_peak_mib"] = measure_memory(args, cell, size, "torch")
                r["scratch_peak_mib"] = measure_memory(args, cell, size, "scratch")
            results.append(r)
            def fmt(v):
                return "   n/a" if v is None else f"{v:6.1f}"
            print(f"{cell:5} {size:8} {r['B']:>3} {r['T']:>4} {r['H']:>4} | "
                  f"{r['torch_ms']:7.1f}ms {r['scratch_ms']:7.1f}ms {r['ratio']:5.2f}x "
                  f"[{r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}] | {r['torch_best_ms']:5.1f} "
                  f"{r['scratch_best_ms']:5.1f} {r['ratio_of_best']:4.2f}x | "
                  f"{100 * r['recording_cost']:+6.1f}% | "
                  f"{r['compile_s']:6.1f}s | {fmt(r.get('torch_peak_mib'))}MiB "
                  f"{fmt(r.get('scratch_peak_mib'))}MiB"
                  + (f" | {r['scratch_graphs_ms']:7.1f}ms {r['graphs_ratio']:5.2f}x"
                     if args.cuda_graphs else ""), flush=True)
    _finish(info, args, results)


def _finish(info, args, results):
    info["loadavg_end"] = os.getloadavg()
    info["cpu_pressure_end"] = _cpu_pressure()
    print(f"# load average start {info['loadavg_start']}, end {info['loadavg_end']}; "
          f"CPU pressure (PSI some avg10/60/300) start {info['cpu_pressure_start']}, "
          f"end {info['cpu_pressure_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
        print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
