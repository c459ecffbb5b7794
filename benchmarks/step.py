"""minigrad against PyTorch eager, fairly: every measurement in a fresh process of its own.

    python -m benchmarks.step                                  # step, eval, cold, hosted
    python -m benchmarks.step --rows step --configs baby --rounds 7
    python -m benchmarks.step --rows train --eval-iters 20,200 --train-rounds 1
    python -m benchmarks.step --rows rss

This process imports neither framework. Each round starts one process per framework (the
order alternates between rounds, so that a noisy machine slows both alike) and the output
gives every round and the median of the per-round ratios minigrad / PyTorch. PyTorch runs
with its default threads in a process that never imported minigrad, except in the
`hosted` row, which measures exactly that on purpose.

Rows:
- step: ms per training step (forward, backward, clip 1.0, AdamW, zero_grad), median of
  --steps steps after --warmup, same batches, per --configs;
- eval: ms per evaluation batch (forward and loss under no_grad), per --configs;
- train: wall seconds of the whole default `minigrad train` against
  benchmarks/train_torch_reference.py (same settings), at each --eval-iters; also their
  peak RSS;
- rss: peak RSS of a default `minigrad train` (its first 500 iterations: three
  evaluations, checkpoints and loss plots, and training after a checkpoint) and of the
  PyTorch reference, in MiB (getrusage's ru_maxrss / 1024) and in millions of bytes (MB);
- cold: seconds from launching a process to its first finished training step, with an
  empty Numba cache and then with the cache that run filled;
- hosted: PyTorch's step time in a process that imported minigrad and ran two minigrad
  steps, divided by the same in a plain process.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks.common import CONFIGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("step", "eval", "train", "rss", "cold", "hosted")


def _job(module, *args, env=None):
    """Run `python -m module args` in a fresh process; return its last line as JSON."""
    out = subprocess.run([sys.executable, "-m", module, *args], check=True, text=True,
                         capture_output=True, cwd=ROOT, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed_run(cmd, env=None):
    """Run cmd to completion: (wall seconds, peak RSS in MiB of it or its largest child)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited with status {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024


def _rounds(title, unit, rounds, measure_a, measure_b, names=("minigrad", "torch")):
    """Alternate measure_a / measure_b over rounds; print each round; return median ratio."""
    print(f"\n{title}")
    print(f"round {names[0]:>12} {names[1]:>12}    ratio")
    ratios = []
    for r in range(rounds):
        first, second = (measure_a, measure_b) if r % 2 == 0 else (measure_b, measure_a)
        x = first()
        y = second()
        a, b = (x, y) if r % 2 == 0 else (y, x)
        ratios.append(a / b)
        print(f"{r:5d} {a:10.2f}{unit} {b:10.2f}{unit} {ratios[-1]:8.3f}", flush=True)
    median = statistics.median(ratios)
    print(f"median ratio {names[0]} / {names[1]}: {median:.3f}", flush=True)
    return median


def row_step(task, configs, rounds, steps, warmup):
    """The step or eval row for each config: ms per call, per round."""
    results = {}
    for name in configs:
        args = [task, "--config", name, "--steps", str(steps), "--warmup", str(warmup)]
        what = "training step" if task == "step" else "evaluation batch (no_grad)"
        results[name] = _rounds(
            f"{name} GPT {CONFIGS[name]}: ms per {what}, median of {steps} after {warmup}",
            "ms", rounds,
            lambda a=args: _job("benchmarks.job_minigrad", *a)["ms"],
            lambda a=args: _job("benchmarks.job_torch", *a)["ms"])
    return results


def _minigrad_train(eval_iters, max_iters):
    with tempfile.TemporaryDirectory() as out:
        return _timed_run([sys.executable, "-m", "minigrad", "train", "--out-dir", out,
                           "--no-progress", "--eval-iters", str(eval_iters),
                           "--max-iters", str(max_iters)])


def _torch_train(eval_iters, max_iters):
    return _timed_run([sys.executable, "-m", "benchmarks.train_torch_reference",
                       "--eval-iters", str(eval_iters), "--max-iters", str(max_iters)])


def row_train(eval_iters_list, rounds, max_iters):
    """Whole default runs, wall seconds; peak RSS of each run alongside."""
    results = {}
    for eval_iters in eval_iters_list:
        rss = {"minigrad": [], "torch": []}

        def run(framework, fn, e=eval_iters, peaks=rss):
            seconds, peak = fn(e, max_iters)
            peaks[framework].append(peak)
            return seconds

        results[eval_iters] = _rounds(
            f"whole default run, --max-iters {max_iters} --eval-iters {eval_iters}: "
            "`minigrad train` vs benchmarks.train_torch_reference, wall seconds", "s", rounds,
            lambda r=run: r("minigrad", _minigrad_train),
            lambda r=run: r("torch", _torch_train))
        print("peak RSS (MiB) of those runs: minigrad "
              f"{', '.join(f'{m:.0f}' for m in rss['minigrad'])}; torch "
              f"{', '.join(f'{m:.0f}' for m in rss['torch'])}", flush=True)
    return results


_MB_PER_MIB = 1024 * 1024 / 1e6

# Run in a bare process: VmRSS (KiB) before and after loading the library argv[1].
_LOAD_LIBRARY = r"""
import ctypes, re, sys
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1))
before = rss()
ctypes.CDLL(sys.argv[1])
print(rss() - before)
"""


def llvmlite_library():
    """The path of Numba's LLVM library, libllvmlite.so (found without importing it)."""
    package = importlib.util.find_spec("llvmlite").submodule_search_locations[0]
    return os.path.join(package, "binding", "libllvmlite.so")


def llvm_mapped_mib():
    """MiB that loading Numba's LLVM library (libllvmlite.so) alone adds to a bare process.

    RSS counts the pages of that file a process maps, and how many it maps depends on how
    the page cache holds the file: on the project's machine 39 MiB when it came in through
    page faults, 104 MiB after one sequential read, as right after `pip install`
    (RESULTS.md, run 8). The rss row prints it so that its figures can be read."""
    out = subprocess.run([sys.executable, "-c", _LOAD_LIBRARY, llvmlite_library()],
                         check=True, text=True, capture_output=True).stdout
    return int(out) / 1024


# Long enough to train after a checkpoint: what a checkpoint leaves in memory shows there
# (run 10: 250 iterations peaked at 187 MiB, whole runs at 199).
_RSS_ITERS = 500


def row_rss(rounds):
    """Peak RSS of default runs cut at _RSS_ITERS iterations."""
    print(f"\npeak RSS, MiB (and millions of bytes): default `minigrad train --max-iters "
          f"{_RSS_ITERS}` (three evaluations, checkpoints and loss plots, and training after "
          "a checkpoint) and the PyTorch reference, same settings")
    peaks = {"minigrad": [], "torch": []}
    for _ in range(rounds):
        peaks["minigrad"].append(_minigrad_train(200, _RSS_ITERS)[1])
        peaks["torch"].append(_torch_train(200, _RSS_ITERS)[1])
    for name, values in peaks.items():
        median = statistics.median(values)
        print(f"  {name:9s} {', '.join(f'{v:.0f}' for v in values)} MiB  (median {median:.0f} "
              f"MiB = {median * _MB_PER_MIB:.1f} MB)", flush=True)
    print(f"  (loading libllvmlite.so alone adds {llvm_mapped_mib():.0f} MiB to a bare process "
          "now; this part of minigrad's figure depends on the page cache)", flush=True)
    return {name: statistics.median(v) for name, v in peaks.items()}


def row_cold(rounds):
    """Seconds from process launch to the first finished step, empty and warm Numba cache."""
    print("\ncold start: seconds from launching a process to its first finished baby step")
    print("round  minigrad(empty cache)  minigrad(warm cache)  torch")
    empty, warm, torch_s = [], [], []
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            empty.append(_job("benchmarks.job_minigrad", "cold", "--t0", repr(time.time()),
                              env=env)["seconds"])
            warm.append(_job("benchmarks.job_minigrad", "cold", "--t0", repr(time.time()),
                             env=env)["seconds"])
        torch_s.append(_job("benchmarks.job_torch", "cold", "--t0", repr(time.time()))["seconds"])
        print(f"{r:5d} {empty[-1]:18.2f} s {warm[-1]:18.2f} s {torch_s[-1]:7.2f} s", flush=True)
    result = {"empty": statistics.median(empty), "warm": statistics.median(warm),
              "torch": statistics.median(torch_s)}
    print(f"median: empty cache {result['empty']:.2f} s, warm cache {result['warm']:.2f} s, "
          f"torch {result['torch']:.2f} s", flush=True)
    return result


def row_hosted(rounds, steps, warmup):
    """PyTorch's baby step with minigrad imported and run in its process, over without."""
    args = ["step", "--config", "baby", "--steps", str(steps), "--warmup", str(warmup)]
    return _rounds(
        "hosted: PyTorch ms per baby step in a process that imported and ran minigrad "
        "(hosted) and in a plain process", "ms", rounds,
        lambda: _job("benchmarks.job_torch", *args, "--host-minigrad")["ms"],
        lambda: _job("benchmarks.job_torch", *args)["ms"], names=("hosted", "plain"))


def main(argv=None):
    """Run the rows chosen by the flags; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="step,eval,cold,hosted",
                        help=f"comma-separated, of {','.join(ROWS)}")
    parser.add_argument("--configs", default="baby,medium", help="for step and eval")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-iters", default="20,200", help="for the train row")
    parser.add_argument("--max-iters", type=int, default=2000, help="for the train row")
    parser.add_argument("--train-rounds", type=int, default=1, help="for train and rss")
    args = parser.parse_args(argv)
    rows = args.rows.split(",")
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {ROWS}")
    configs = args.configs.split(",")
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{os.getloadavg()[0]:.2f}")
    print("command: python -m benchmarks.step " + " ".join(argv or sys.argv[1:]))
    if "step" in rows:
        row_step("step", configs, args.rounds, args.steps, args.warmup)
    if "eval" in rows:
        row_step("eval", configs, args.rounds, args.steps, args.warmup)
    if "train" in rows:
        row_train([int(e) for e in args.eval_iters.split(",")], args.train_rounds,
                  args.max_iters)
    if "rss" in rows:
        row_rss(args.train_rounds)
    if "cold" in rows:
        row_cold(min(args.rounds, 3))
    if "hosted" in rows:
        row_hosted(args.rounds, args.steps, args.warmup)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
