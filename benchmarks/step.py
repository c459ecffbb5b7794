"""Training-step speed of minigrad against PyTorch eager, in interleaved rounds.

    python -m benchmarks.step                     # baby GPT, 7 rounds
    python -m benchmarks.step --config medium --rounds 5
    python -m benchmarks.step --memory --cold     # also peak RSS and cold start

One step = forward, backward, clip_grad_norm_(1.0), AdamW step, zero_grad, on the same
batches and the same initial weights for both frameworks. Each round times `--steps` steps
of minigrad and then of PyTorch (the order alternates between rounds), so that a noisy
machine slows both alike; the result is the median over rounds of the per-round ratio.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from minigrad.models.data import CharDataset, load_text
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
from minigrad import optim

CONFIGS = {
    # nanoGPT's shakespeare_char "baby GPT" on the CPU, and a medium model.
    "baby": dict(batch_size=12, block_size=64, n_layer=4, n_head=4, n_embd=128),
    "medium": dict(batch_size=8, block_size=256, n_layer=6, n_head=6, n_embd=384),
}
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0


def _batches(config, n, seed=0):
    data = CharDataset(load_text("shakespeare"))
    rng = np.random.default_rng(seed)
    return [data.get_batch("train", config["batch_size"], config["block_size"], rng)
            for _ in range(n)]


def _minigrad_model(config):
    mg.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=65, block_size=config["block_size"],
                        n_layer=config["n_layer"], n_head=config["n_head"],
                        n_embd=config["n_embd"]))
    return gpt, gpt.configure_optimizers(WEIGHT_DECAY, LR, BETAS)


def _minigrad_step(model, optimizer, params, x, y):
    _, loss = model(x, y)
    loss.backward()
    optim.clip_grad_norm_(params, CLIP)
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


def _torch_model(gpt):
    import torch

    from tests.torch_gpt import TorchGPT

    c = gpt.config
    model = TorchGPT(c.vocab_size, c.block_size, c.n_layer, c.n_head, c.n_embd, flash=True)
    state = {k: torch.from_numpy(np.array(v)) for k, v in gpt.state_dict().items()}
    model.load_state_dict(state)
    # nanoGPT's configure_optimizers: decay on 2-D weights only.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return model, torch.optim.AdamW(groups, lr=LR, betas=BETAS)


def _torch_step(model, optimizer, x, y):
    import torch

    _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def _time_steps(step, batches):
    times = []
    for x, y in batches:
        start = time.perf_counter()
        step(x, y)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run_speed(config_name, rounds, steps, warmup):
    """Print each round's ms/step and return the median ratio minigrad / torch."""
    config = CONFIGS[config_name]
    batches = _batches(config, steps + warmup)
    gpt, mg_opt = _minigrad_model(config)
    params = list(gpt.parameters())

    def mg_step(x, y):
        return _minigrad_step(gpt, mg_opt, params, x, y)

    try:
        import torch

        torch_model, torch_opt = _torch_model(gpt)

        def th_step(x, y):
            return _torch_step(torch_model, torch_opt, x, y)

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        th_step = None
        print("torch is not installed: minigrad only")

    for x, y in batches[:warmup]:  # compile Numba kernels, warm caches and allocators
        mg_step(x, y)
        if th_step:
            th_step(x, y)
    timed = batches[warmup:]
    print(f"{config_name} GPT {config}: ms per training step, median of {steps} steps")
    print("round  minigrad     torch   ratio")
    ratios = []
    for r in range(rounds):
        order = [("mg", mg_step), ("th", th_step)] if r % 2 == 0 else [("th", th_step),
                                                                        ("mg", mg_step)]
        result = {}
        for name, step in order:
            if step is not None:
                result[name] = _time_steps(step, timed)
        if th_step:
            ratios.append(result["mg"] / result["th"])
            print(f"{r:5d} {result['mg']:9.2f} {result['th']:9.2f} {ratios[-1]:7.3f}")
        else:
            print(f"{r:5d} {result['mg']:9.2f}")
    if ratios:
        print(f"median ratio minigrad / torch: {statistics.median(ratios):.3f}")
        return statistics.median(ratios)
    return None


# ----- memory and cold start: each measured in a fresh process -----------------------------
def _peak_rss_mb():
    """This process's peak resident set size in MB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent across
    fork + exec, so a child of a large benchmark process would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_train(framework, iters):
    """Body of a child process: a training run of `iters` steps, then print peak RSS.

    "cli" is `minigrad train` itself with its defaults (evaluation, loss plot, checkpoints)
    but `iters` iterations; "minigrad" and "torch" run the bare steps of this benchmark.
    """
    if framework == "cli":
        import tempfile

        from minigrad.models.train import TrainConfig, train

        with tempfile.TemporaryDirectory() as out:
            train(TrainConfig(out_dir=out, max_iters=iters, progress=False))
        print(json.dumps({"framework": framework, "peak_rss_mb": round(_peak_rss_mb(), 1)}))
        return
    config = CONFIGS["baby"]
    batches = _batches(config, iters)
    gpt, mg_opt = _minigrad_model(config)
    if framework == "minigrad":
        params = list(gpt.parameters())
        for x, y in batches:
            _minigrad_step(gpt, mg_opt, params, x, y)
    else:
        model, opt = _torch_model(gpt)
        del gpt, mg_opt
        for x, y in batches:
            _torch_step(model, opt, x, y)
    print(json.dumps({"framework": framework, "peak_rss_mb": round(_peak_rss_mb(), 1)}))


def _run_child(*args):
    out = subprocess.run([sys.executable, "-m", "benchmarks.step", *args], check=True,
                         capture_output=True, text=True, cwd=_ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_memory(iters):
    """Peak RSS of a training run of `iters` steps, minigrad and torch, each in its process."""
    print(f"peak RSS of {iters}-step baby GPT training runs (fresh process each):")
    names = {"minigrad": "minigrad (steps)", "torch": "torch (steps)",
             "cli": "minigrad train (defaults, with eval + checkpoints)"}
    for framework in ("minigrad", "torch", "cli"):
        result = _run_child("--child-train", framework, "--steps", str(iters))
        print(f"  {names[framework]:52s} {result['peak_rss_mb']:8.1f} MB")


def run_cold_start():
    """Seconds from launching `minigrad train` to its first finished step (warm cache)."""
    code = ("import time, sys; t0 = float(sys.argv[1]); "
            "from benchmarks.step import CONFIGS, _batches, _minigrad_model, _minigrad_step; "
            "c = CONFIGS['baby']; (x, y), = _batches(c, 1); g, o = _minigrad_model(c); "
            "_minigrad_step(g, o, list(g.parameters()), x, y); "
            "print(time.time() - t0)")
    times = []
    for _ in range(3):  # the first run may fill the Numba cache; later ones are warm
        out = subprocess.run([sys.executable, "-c", code, repr(time.time())], check=True,
                             capture_output=True, text=True, cwd=_ROOT)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    print(f"cold process to first finished step: {', '.join(f'{t:.2f}' for t in times)} s "
          f"(warm cache: {min(times[1:]):.2f} s)")


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    """Run the benchmarks chosen by the flags; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="baby")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS")
    parser.add_argument("--cold", action="store_true", help="also measure cold start")
    parser.add_argument("--child-train", choices=["minigrad", "torch", "cli"],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_train:
        _child_train(args.child_train, args.steps)
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"backend {mg.kernels.backend()}")
    run_speed(args.config, args.rounds, args.steps, args.warmup)
    if args.memory:
        run_memory(250)
    if args.cold:
        run_cold_start()


if __name__ == "__main__":
    main()
