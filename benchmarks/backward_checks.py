"""Cost of the engine's backward checks on a baby-GPT training step, in interleaved steps.

    python -m benchmarks.backward_checks                  # against the engine of 0013240
    python -m benchmarks.backward_checks --rounds 20 --steps 10 --cpu   # CPU time, busy box
    python -m benchmarks.backward_checks --base REV

The engine checks what every backward returns (DESIGN.md "Extending"). To time what that
costs, this script runs the same training steps (forward, backward, clip_grad_norm_, AdamW,
zero_grad; benchmarks/step.py's step) with the current `autograd.backward` and with the one
of commit `--base`, which had no checks: its `backward` and `unbroadcast` are read from git
and run in the current module's namespace, so everything else is the same code. Each of
`--rounds` rounds times `--steps` steps, each step with both engines back to back (the order
alternating); the result is the median of the per-step ratios checked / unchecked.

As the machine's noise between steps is larger than the cost measured, it also times the
checks alone: it records what every backward of one step returned, then replays those values
through the two check functions (`_returned_grads`, `_checked_grad`) many times, and gives
their time per step as a share of the median step time.
"""

import argparse
import statistics
import subprocess
import time

from benchmarks.step import CONFIGS, _batches, _minigrad_model, _minigrad_step
from minigrad import autograd

BASE = "0013240"  # the last commit before the checks


def unchecked_backward(rev):
    """`autograd.backward` as it was at git revision `rev`, in the current module's globals."""
    source = subprocess.run(["git", "show", f"{rev}:minigrad/autograd.py"], check=True,
                            capture_output=True, text=True).stdout
    namespace = dict(vars(autograd))
    for name in ("unbroadcast", "backward"):
        start = source.index(f"\ndef {name}(")
        end = source.find("\n\n\n", start)
        exec(source[start:None if end < 0 else end], namespace)  # noqa: S102
    return namespace["backward"]


def replayed_check_ms(step, batch, reps=200):
    """Milliseconds per step spent in the two check functions, replayed on one step's values.

    Returns (ms, number of nodes, number of gradient entries).
    """
    seen = []
    returned_grads = autograd._returned_grads

    def record(node, returned):
        grads = returned_grads(node, returned)
        seen.append((node, grads, returned))
        return grads

    autograd._returned_grads = record
    try:
        step(*batch)
    finally:
        autograd._returned_grads = returned_grads
    entries = [(node, i, node._inputs[i], g) for node, grads, _ in seen
               for i, g in enumerate(grads) if g is not None]
    check = autograd._checked_grad
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        for node, _, returned in seen:
            returned_grads(node, returned)
        for node, i, inp, g in entries:
            check(node, i, inp, g)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), len(seen), len(entries)


def main(argv=None):
    """Print each round's ms/step of both engines and the median ratio; returns it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=BASE, help="git revision of the unchecked engine")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cpu", action="store_true",
                        help="time CPU seconds of this process (process_time) instead of wall "
                             "time: less disturbed by other processes on a busy machine")
    args = parser.parse_args(argv)
    clock = time.process_time if args.cpu else time.perf_counter

    engines = {"checked": autograd.backward, "unchecked": unchecked_backward(args.base)}
    config = CONFIGS["baby"]
    batches = _batches(config, args.steps + args.warmup)
    gpt, optimizer = _minigrad_model(config)
    params = list(gpt.parameters())

    def step(x, y):
        return _minigrad_step(gpt, optimizer, params, x, y)

    def run(engine, batch):
        """Median ms per step of `engine` over the (x, y) pairs in `batch`."""
        autograd.backward = engines[engine]
        try:
            times = []
            for x, y in batch:
                start = clock()
                step(x, y)
                times.append(1000 * (clock() - start))
            return statistics.median(times)
        finally:
            autograd.backward = engines["checked"]

    for engine in engines:  # compile Numba kernels, warm caches and allocators
        run(engine, batches[:args.warmup])
    timed = batches[args.warmup:]
    print(f"baby GPT {config}: ms per training step ({'CPU' if args.cpu else 'wall'} time); "
          f"each step is timed with both engines back to back (order alternating), "
          f"{args.steps} steps a round")
    print("round   checked unchecked   ratio (median of the round's step pairs)")
    ratios, all_ms = [], []
    for r in range(args.rounds):
        ms = {"checked": [], "unchecked": []}
        for i, batch in enumerate(timed):
            order = ["checked", "unchecked"] if (r + i) % 2 == 0 else ["unchecked", "checked"]
            for engine in order:
                ms[engine].append(run(engine, [batch]))
            ratios.append(ms["checked"][-1] / ms["unchecked"][-1])
        all_ms += ms["checked"]
        round_ratio = statistics.median(ratios[-len(timed):])
        print(f"{r:5d} {statistics.median(ms['checked']):9.2f} "
              f"{statistics.median(ms['unchecked']):9.2f} {round_ratio:7.4f}")
    median = statistics.median(ratios)
    print(f"median of {len(ratios)} step ratios checked / unchecked: {median:.4f} "
          f"({100 * (median - 1):+.2f}%)")
    step_ms = statistics.median(all_ms)
    check_ms, n_nodes, n_entries = replayed_check_ms(step, timed[0])
    print(f"checks alone: {1000 * check_ms:.0f} us per step ({n_nodes} nodes, {n_entries} "
          f"gradients) = {100 * check_ms / step_ms:.2f}% of the median step "
          f"({step_ms:.2f} ms)")
    return median


if __name__ == "__main__":
    main()
