"""Where a minigrad training step spends its time, and how fast its matrix products can be.

    python -m benchmarks.step_profile [--config baby] [--steps 20] [--rounds 3]

1. In one minigrad process: the median step time, and the time inside each kernel
   (every function of the active kernel module, timed around its calls; a kernel called by
   another, such as attention's products, counts for its caller).
2. The products of one step (every call to the kernels' matmul, and dense's x @ weight^T,
   with their operands; not the attention kernels' own) are saved, then replayed in fresh
   processes, alternating: NumPy's `np.matmul` (what minigrad calls) and `torch.matmul`
   (the PyTorch process never imports minigrad). Same arrays, same order, each made
   contiguous; the median of each process's replays is printed.
"""

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import CONFIGS, batches

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(fn, name, spent, depth, recording):
    """fn, adding its time to spent[name] when no other kernel called it, and keeping the
    operands of the products (matmul, dense) while `recording` holds a list."""
    def timed(*args, **kwargs):
        start = time.perf_counter()
        depth[0] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            spent[name] += time.perf_counter() - start
        if name in ("matmul", "dense") and recording and depth[0] == 0:
            a, b = args[0], args[1] if name == "matmul" else args[1].T  # dense: x @ weight^T
            recording[0].append((np.ascontiguousarray(a), np.ascontiguousarray(b)))
        return out
    return timed


def profile(config, steps, products_file):
    """Time a minigrad step and its kernels; save one step's matmul operands."""
    from benchmarks.job_minigrad import model_and_optimizer, train_step
    from minigrad.kernels import K

    spent = collections.Counter()
    recording = []
    depth = [0]  # a kernel called by another kernel (sdpa's matmuls) counts for its caller
    module = K.module
    names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))
             and getattr(getattr(module, n), "__module__", None) == module.__name__]
    for name in names:
        setattr(module, name, _timed(getattr(module, name), name, spent, depth, recording))
    model, opt = model_and_optimizer(CONFIGS[config])
    params = list(model.parameters())
    data = batches(CONFIGS[config], steps + 6)
    for x, y in data[:5]:
        train_step(model, opt, params, x, y)
    spent.clear()
    times = []
    for x, y in data[5:-1]:
        start = time.perf_counter()
        train_step(model, opt, params, x, y)
        times.append(time.perf_counter() - start)
    recording.append([])
    train_step(model, opt, params, *data[-1])
    products = recording[0]
    np.savez(products_file, **{f"a{i}": a for i, (a, _) in enumerate(products)},
             **{f"b{i}": b for i, (_, b) in enumerate(products)})
    step_ms = 1000 * statistics.median(times)
    print(f"{config} GPT, minigrad: {step_ms:.1f} ms per step (median of {steps}); "
          "time inside each kernel, ms per step:")
    for name, seconds in spent.most_common():
        print(f"  {name:24s} {1000 * seconds / steps:7.2f}")
    print(f"  (outside the kernels: {step_ms - 1000 * sum(spent.values()) / steps:.2f}; "
          "the attention kernels include their own products)")
    return len(products)


def replay(framework, products_file, repeats):
    """Median ms of running the saved products in order, in this process."""
    saved = np.load(products_file)
    pairs = [(saved[f"a{i}"], saved[f"b{i}"]) for i in range(len(saved.files) // 2)]
    if framework == "torch":
        import torch

        pairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]
        product = torch.matmul
    else:
        product = np.matmul
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        for a, b in pairs:
            product(a, b)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replay", choices=["numpy", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--products", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replay:
        print(json.dumps({"ms": replay(args.replay, args.products, 10)}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        products = os.path.join(tmp, "products.npz")
        count = subprocess.run(
            [sys.executable, "-c", "import sys; from benchmarks.step_profile import profile; "
             f"print(profile({args.config!r}, {args.steps}, {products!r}))"],
            cwd=ROOT, check=True, text=True, capture_output=True)
        lines = count.stdout.strip().splitlines()
        print("\n".join(lines[:-1]))
        print(f"\nthe {lines[-1]} products of one step, replayed in fresh processes, ms "
              "(median of 10 replays each):")
        print("round     numpy    torch")
        results = {"numpy": [], "torch": []}
        for r in range(args.rounds):
            order = ("numpy", "torch") if r % 2 == 0 else ("torch", "numpy")
            for framework in order:
                out = subprocess.run([sys.executable, "-m", "benchmarks.step_profile",
                                      "--replay", framework, "--products", products],
                                     cwd=ROOT, check=True, text=True, capture_output=True)
                results[framework].append(json.loads(out.stdout)["ms"])
            print(f"{r:5d} {results['numpy'][-1]:9.2f} {results['torch'][-1]:8.2f}", flush=True)
        print(f"median {statistics.median(results['numpy']):8.2f} "
              f"{statistics.median(results['torch']):8.2f}")


if __name__ == "__main__":
    main()
