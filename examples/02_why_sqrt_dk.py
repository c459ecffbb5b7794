"""Why divide by sqrt(d_k): softmax saturation and the gradient that survives it.

If the entries of q and k are independent with mean 0 and variance 1, then q . k is a sum
of d_k such products: its variance is d_k, so its spread grows like sqrt(d_k). Without the
scaling, the larger the head, the larger the scores, the closer each softmax row gets to
one-hot ("sem scaling, a attention vira hard"), and the softmax Jacobian diag(p) - p p^T
goes to zero: almost no gradient reaches the scores, hence q, k and W_Q, W_K
("gradientes quase zero"). Dividing by sqrt(d_k) keeps the scores' variance at 1 for
every d_k.

This script measures, for growing d_k, with and without the scaling:
  - the score's standard deviation and the largest attention weight of each row,
  - |dL/d(scores)| from one minigrad backward pass (L = sum(g * output), g random) and
    the fraction |dL/d(scores)| / |dL/d(probs)| that the softmax lets through,
averaged over trials,
and plots them (why_sqrt_dk.png in --out).

    python examples/02_why_sqrt_dk.py --out out/examples
"""

import argparse
import math
import os
import sys

import numpy as np

import minigrad as mg

T = 16  # keys per query


def measure(d_k, scaled, trials, rng):
    """Mean (score std, max weight, |dL/dS|, |dL/dS| / |dL/dP|) over `trials` random q, k, v
    (S the scores, P the probabilities)."""
    stats = []
    for _ in range(trials):
        q = mg.tensor(rng.standard_normal((T, d_k)), requires_grad=True)  # (T, d_k)
        k = mg.tensor(rng.standard_normal((T, d_k)))  # (T, d_k)
        v = mg.tensor(rng.standard_normal((T, d_k)))  # (T, d_k)
        scores = (q @ k.T) * (1 / math.sqrt(d_k) if scaled else 1.0)  # (T, T)
        scores.retain_grad()
        probs = scores.softmax(axis=-1)  # (T, T)
        probs.retain_grad()
        out = probs @ v  # (T, d_k)
        # Per-row gradient of unit size, so that only the softmax decides what goes back.
        g = rng.standard_normal(out.shape) / math.sqrt(d_k)
        out.backward(g)
        # What fraction of the gradient arriving at the probabilities the softmax lets
        # through to the scores: its Jacobian diag(p) - p p^T shrinks as rows go one-hot.
        passed = np.linalg.norm(scores.grad) / np.linalg.norm(probs.grad)
        stats.append((scores.data.std(), probs.data.max(axis=-1).mean(),
                      np.linalg.norm(scores.grad), passed))
    return np.mean(stats, axis=0)


def main(argv=None):
    """Measure, print a table, and write why_sqrt_dk.png into --out; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="fewer sizes and trials")
    parser.add_argument("--out", default="out/examples", help="directory for the plot")
    args = parser.parse_args(argv)
    sizes = [4, 64, 512] if args.fast else [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    trials = 3 if args.fast else 50
    rng = np.random.default_rng(0)
    results = {scaled: np.array([measure(d, scaled, trials, rng) for d in sizes])
               for scaled in (False, True)}

    print(f"{'d_k':>5}  {'score std':>19}  {'max weight':>19}  {'|dL/dscores|':>19}  "
          f"{'|dS| / |dP|':>19}")
    print(f"{'':>5}  " + "  ".join(f"{'raw':>9} {'scaled':>9}" for _ in range(4)))
    for i, d in enumerate(sizes):
        raw, sc = results[False][i], results[True][i]
        print(f"{d:>5}  " + "  ".join(f"{raw[j]:>9.3g} {sc[j]:>9.3g}" for j in range(4)))
    print("\nWithout scaling the score std grows like sqrt(d_k), rows go one-hot (max weight "
          "-> 1)\nand the gradient reaching the scores collapses; with 1/sqrt(d_k) all "
          "three stay put.")

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "why_sqrt_dk.png")
    plot(sizes, results, path)
    print(f"wrote {path}")
    return 0


def plot(sizes, results, path):
    """Three panels against d_k: score std, mean max weight, the softmax's pass-through."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
    titles = ("score std (q.k)", "mean max attention weight",
              "gradient let through: |dL/dS| / |dL/dP|")
    for ax, j, title in zip(axes, (0, 1, 3), titles, strict=True):
        for scaled, style in ((False, "o-"), (True, "s-")):
            label = "q.k / sqrt(d_k)" if scaled else "q.k (no scaling)"
            ax.plot(sizes, results[scaled][:, j], style, label=label, markersize=4)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_title(title, fontsize=10)
    axes[0].set_yscale("log", base=2)
    axes[2].set_yscale("log")
    axes[1].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"softmax saturation: {T} keys per query, random q, k, v ~ N(0, 1)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
