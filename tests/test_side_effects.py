"""minigrad leaves its host process as it found it (DESIGN.md "Conventions").

In a fresh interpreter: the environment, every BLAS/OpenMP library's thread setting (as
threadpoolctl sees it) and the threads are recorded before `import minigrad`, after it,
and after a training step. Importing changes nothing; a step adds only minigrad's own idle
worker threads, and leaves the environment and the thread settings as they were.
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
    assert stepped["pools"] == before["pools"]


def test_step_adds_only_minigrads_idle_workers(snapshots):
    before, _, stepped = snapshots
    new = list(stepped["threads"])
    for name in before["threads"]:
        new.remove(name)
    assert all(name.startswith("minigrad-worker") for name in new), new
    assert len(new) < (os.cpu_count() or 1)
    # no native threads behind Python's back (an OpenMP pool, say)
    assert stepped["tasks"] - before["tasks"] == len(new)
