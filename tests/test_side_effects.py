"""minigrad leaves its host process as it found it (DESIGN.md "Conventions").

In a fresh interpreter: the environment, every BLAS/OpenMP library's thread setting (as
threadpoolctl sees it) and the threads are recorded before `import minigrad`, after it,
and after a training step. Importing changes nothing. A step leaves the environment and
every thread setting it found as it was (minigrad holds OpenBLAS to one thread only inside
its own calls); it adds only the threads of Numba's pool, which its parallel kernels start,
and the OpenMP runtime behind them, at its own default.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, threading
import numpy as np
from threadpoolctl import threadpool_info

def snapshot():
    return {"env": dict(os.environ),
            "pools": sorted((i["filepath"], i["num_threads"]) for i in threadpool_info()),
            "threads": sorted(t.name for t in threading.enumerate()),
            "tasks": len(os.listdir("/proc/self/task"))}

before = snapshot()
import minigrad as mg
from minigrad.models.gpt import GPT, GPTConfig
imported = snapshot()
model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=1, n_head=4, n_embd=128))
opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
x = np.random.default_rng(0).integers(0, 65, (8, 64))
_, loss = model(x, x)
loss.backward()
mg.optim.clip_grad_norm_(list(model.parameters()), 1.0)
opt.step()
stepped = snapshot()
print(json.dumps([before, imported, stepped]))
"""


@pytest.fixture(scope="module")
def snapshots():
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_BACKEND"}
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_changes_nothing(snapshots):
    before, imported, _ = snapshots
    assert imported == before


def test_step_leaves_env_and_thread_settings(snapshots):
    before, _, stepped = snapshots
    assert stepped["env"] == before["env"]
    found = dict(map(tuple, before["pools"]))
    after = dict(map(tuple, stepped["pools"]))
    assert {path: after.get(path) for path in found} == found
    # what the step loaded: at most the OpenMP runtime of Numba's pool, at its default
    loaded = {path: n for path, n in after.items() if path not in found}
    assert all("omp" in os.path.basename(path) for path in loaded), loaded
    assert all(n == len(os.sched_getaffinity(0)) for n in loaded.values()), loaded


def test_step_adds_only_the_kernels_pool(snapshots):
    before, _, stepped = snapshots
    assert stepped["threads"] == before["threads"]  # nothing in Python's threading
    # Numba's pool: one native thread per core besides the caller, at most
    assert 0 <= stepped["tasks"] - before["tasks"] < len(os.sched_getaffinity(0))
