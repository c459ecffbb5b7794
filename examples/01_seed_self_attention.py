"""The study material's worked examples, recomputed step by step with minigrad.

The seeds (Portuguese slides and notes in the course material) print numbers for three
examples; here each number is recomputed and compared, and where the seed is wrong the
output says so and shows the right value:

  A. "O Mecanismo de Autoatenção em Detalhe": 3 tokens x 4 dims, given W^Q, W^K, W^V,
     causal ("máscara") attention, row-vector convention q_i = x_i W^Q.
  B. "Pizza é bom" (Attention is All You Need slides): N = 3, d_model = 2.
  C. The masked matrix ("Matriz de Compatibilidade com máscara aplicada", YOUR CAT IS A
     LOVELY CAT) and the NumPy snippet of the multi-head slides (softmax over axis=0).

Finally the gradient of a loss is traced back through example A, to see that the masked
(future) entries get exactly zero gradient.

    python examples/01_seed_self_attention.py          # prints everything
"""

import argparse
import math
import sys

import numpy as np

import minigrad as mg

np.set_printoptions(precision=4, suppress=True, floatmode="fixed")


class Checker:
    """Compares a seed's printed number with ours and keeps the list of mismatches."""

    def __init__(self):
        self.mismatches = []

    def check(self, what, seed, ours, atol):
        seed = np.asarray(seed, dtype=np.float64)
        ours = np.asarray(ours, dtype=np.float64)
        if np.allclose(seed, ours, atol=atol):
            print(f"  ok        {what}: seed {_fmt(seed)} = ours {_fmt(ours)}")
        else:
            self.mismatches.append(what)
            print(f"  SEED WRONG {what}: seed prints {_fmt(seed)}, correct is {_fmt(ours)}")


def _fmt(a):
    return np.array2string(np.round(a, 4), separator=", ") if a.ndim else f"{float(a):.4f}"


def causal_attention(x, wq, wk, wv, scale):
    """The seed's steps 1-4 with minigrad ops: (Q, K, V, scores, weights, outputs)."""
    q, k, v = x @ wq, x @ wk, x @ wv  # step 1, row vectors: q_i = x_i W^Q  (T, d)
    scores = (q @ k.T) * scale  # step 2: score(x_i, x_j) = q_i . k_j (* 1/sqrt(d_k))  (T, T)
    T = x.shape[0]
    future = ~np.tril(np.ones((T, T), dtype=bool))  # j > i: the words not seen yet
    weights = scores.masked_fill(future, -np.inf).softmax(axis=-1)  # step 3, per row  (T, T)
    return q, k, v, scores, weights, weights @ v  # step 4: a_i = sum_j alpha_ij v_j


def example_a(c):
    print("A. 'O Mecanismo de Autoatenção em Detalhe': 3 tokens, d = 4, causal")
    x = mg.tensor([[1, 0, 2, 1], [0, 2, 1, 1], [1, 1, 0, 2]], dtype=np.float64)
    wq = mg.tensor([[0.1, 0.2, -0.1, 0.3], [0.2, 0.1, 0.1, -0.2], [-0.1, 0.3, 0.2, 0.1],
                    [0.3, -0.2, 0.1, 0.2]], dtype=np.float64, requires_grad=True)
    wk = mg.tensor([[0.2, -0.1, 0.3, 0.1], [0.1, 0.2, -0.2, 0.3], [0.3, 0.1, 0.1, -0.1],
                    [-0.1, 0.3, 0.2, 0.2]], dtype=np.float64, requires_grad=True)
    wv = mg.tensor([[0.1, 0.3, 0.2, -0.1], [0.2, -0.2, 0.1, 0.3], [-0.1, 0.1, 0.3, 0.2],
                    [0.3, 0.2, -0.1, 0.1]], dtype=np.float64, requires_grad=True)
    # The seed's worked numbers use no 1/sqrt(d_k) (its "formalização" adds it later).
    q, k, v, scores, w, a = (t.data for t in causal_attention(x, wq, wk, wv, 1.0))
    print(" Passo 1 (projections). x_1 W^Q by hand: 1*row1 + 0*row2 + 2*row3 + 1*row4 of W^Q")
    c.check("q1 = x1 W^Q", [0.2, 0.8, 0.6, 0.8], q[0], 0.005)
    c.check("k1 = x1 W^K", [0.7, 0.6, 0.9, 0.2], k[0], 0.005)
    c.check("v1 = x1 W^V", [0.2, 0.8, 0.7, 0.4], v[0], 0.005)
    c.check("q2", [0.1, 0.6, 0.9, 0.8], q[1], 0.005)
    c.check("k2", [0.4, 0.9, 0.1, 0.4], k[1], 0.005)
    c.check("q3", [0.4, 0.3, 0.5, 1.0], q[2], 0.005)
    c.check("k3", [0.6, 0.4, 0.6, 0.5], k[2], 0.005)
    c.check("v2 (used in Passo 4)", [0.7, 0.1, 0.6, 0.9], v[1], 0.005)
    c.check("v3 (used in Passo 4)", [0.5, 0.4, 0.8, 0.3], v[2], 0.005)
    # Even with the seed's own (wrong) vectors, its dot product is off: 0.14+0.48+0.54+0.16.
    own = np.dot([0.2, 0.8, 0.6, 0.8], [0.7, 0.6, 0.9, 0.2])
    c.check("score(x1,x1) from the seed's own q1, k1", 1.4, own, 0.005)
    print(" Passo 2 (scores q_i . k_j, lower triangle):")
    for (i, j), printed in {(0, 0): 1.4, (1, 0): 1.22, (1, 1): 1.32, (2, 0): 1.16,
                            (2, 1): 0.89, (2, 2): 1.04}.items():
        c.check(f"score(x{i + 1},x{j + 1})", printed, scores[i, j], 0.005)
    print(" Passo 3 (softmax of each row over j <= i):")
    for (i, j), printed in {(1, 0): 0.47, (1, 1): 0.53, (2, 0): 0.37, (2, 1): 0.28,
                            (2, 2): 0.35}.items():
        c.check(f"alpha_{i + 1}{j + 1}", printed, w[i, j], 0.005)
    seed_alpha3 = np.exp([1.16, 0.89, 1.04]) / np.exp([1.16, 0.89, 1.04]).sum()
    c.check("alpha_33 = softmax of the seed's own scores", 0.35, seed_alpha3[2], 0.005)
    print(" Passo 4 (a_i = sum_j alpha_ij v_j):")
    c.check("a2", [0.46, 0.45, 0.64, 0.67], a[1], 0.005)
    c.check("a3", [0.45, 0.53, 0.71, 0.46], a[2], 0.005)
    print(" Correct weights (rows sum to 1, the future masked to exactly 0):\n", w)
    print(" Correct outputs a_i:\n", a)
    _, _, _, _, ws, as_ = (t.data for t in causal_attention(x, wq, wk, wv, 1 / math.sqrt(4)))
    print(" With the 1/sqrt(d_k) = 1/2 of the seed's own 'formalização' (step 2), the "
          "weights are flatter:\n", ws, "\n outputs:\n", as_)
    return x, wq, wk, wv


def example_b(c):
    print("\nB. 'Pizza é bom' (N = 3, d_model = 2)")
    ie = mg.tensor([[0.3923, -0.2236], [-0.3195, -1.2050], [1.443, -0.6332]], dtype=np.float64)
    pe = mg.tensor([[0.3901, 0.9088], [0.5334, 0.7073], [0.7116, 0.2050]], dtype=np.float64)
    x = ie + pe  # X = IE + PE
    c.check("X = IE + PE, row 2", [0.2189, -0.4977], x.data[1], 5e-5)
    c.check("X = IE + PE, row 3", [1.7561, -0.4282], x.data[2], 5e-5)
    # W_Q, W_K, W_V are not given, so Q, K, V are taken as printed.
    q = mg.tensor([[0.7197, 0.3081], [0.3592, 0.2259], [0.3430, 0.3670]], dtype=np.float64)
    k = mg.tensor([[0.7133, 0.6944], [0.3993, 0.7455], [0.7490, 0.5221]], dtype=np.float64)
    v = mg.tensor([[0.5530, 0.5382], [0.7668, 0.8359], [0.8591, 0.7898]], dtype=np.float64)
    printed_s = np.array([[0.7730, 0.6600, 0.6730], [0.4300, 0.4000, 0.3950],
                          [0.2701, 0.2300, 0.2633]])
    printed_p = np.array([[0.3902, 0.2040, 0.2098], [0.1869, 0.7522, 0.1341],
                          [0.3103, 0.1631, 0.3633]])
    s = q @ k.T
    c.check("Q K^T", printed_s, s.data, 5e-4)
    print("  the seed's Softmax(Q K^T) rows sum to", printed_p.sum(axis=1),
          "- a softmax row must sum to 1")
    p = s.softmax(axis=-1)
    c.check("Softmax(Q K^T)", printed_p, p.data, 5e-4)
    c.check("softmax of the seed's own printed Q K^T", printed_p,
            mg.tensor(printed_s).softmax(axis=-1).data, 5e-4)
    out = p @ v
    c.check("Sa(X) = Softmax(Q K^T) V", [[0.5524, 0.5462], [0.7957, 0.8353], [0.6089, 0.5903]],
            out.data, 5e-4)
    c.check("the seed's P times V (its matrix product alone)", [[0.5524, 0.5462],
            [0.7957, 0.8353], [0.6089, 0.5903]], (mg.tensor(printed_p) @ v).data, 5e-4)
    scaled = (s * (1 / math.sqrt(2))).softmax(axis=-1)
    print("  scores this small give almost uniform weights, so every output is close to "
          "the mean of V", v.data.mean(axis=0), ";\n  with the slides' own 1/sqrt(d_model) "
          "they are flatter still:\n", scaled.data)
    print("  note: the slides write Q = W_q X, but with X in R^{N x d_model} (one token a row) "
          "it must be Q = X W_q")


def example_c(c):
    print("\nC. The masked matrix (YOUR CAT IS A LOVELY CAT)")
    words = ["YOUR", "CAT", "IS", "A", "LOVELY", "CAT"]
    table = np.array([[0.268, 0.119, 0.134, 0.148, 0.179, 0.152],
                      [0.124, 0.278, 0.201, 0.128, 0.154, 0.115],
                      [0.147, 0.132, 0.262, 0.097, 0.218, 0.145],
                      [0.210, 0.128, 0.206, 0.212, 0.119, 0.125],
                      [0.146, 0.158, 0.152, 0.143, 0.227, 0.174],
                      [0.195, 0.114, 0.203, 0.103, 0.157, 0.229]])
    print("  the unmasked table's rows sum to", table.sum(axis=1), "(fine, up to rounding)")
    # log(P) are scores up to a constant per row, which softmax ignores; so masking the
    # scores with -inf and taking softmax again gives what the masked model would compute.
    T = len(words)
    scores = mg.tensor(np.log(table))
    masked = scores.masked_fill(~np.tril(np.ones((T, T), dtype=bool)), -np.inf)
    p = masked.softmax(axis=-1).data
    print("  'Figura 12: com máscara aplicada' shows the same numbers as the unmasked table,")
    print("  but with the mask M (0 on and below the diagonal, -inf above) the row i only")
    print("  spreads over j <= i:")
    for i, w in enumerate(words):
        print(f"  {w:>7} " + " ".join(f"{p[i, j]:.3f}" for j in range(T)))
    c.check("Figura 12's row 'CAT' (said to be masked)", table[1], p[1], 0.005)
    print("\n  The multi-head slides' NumPy snippet: softmax(x) = exp(x) / sum(exp(x), axis=0)")
    emb = mg.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float64)
    s = emb @ emb.T  # (4, 4) the, cat, sat, on
    wrong = np.exp(s.data) / np.exp(s.data).sum(axis=0)
    right = s.softmax(axis=-1).data
    print("  axis=0 normalises columns: its rows sum to", wrong.sum(axis=1).round(4))
    c.check("snippet's attention weights (axis=0)", wrong, right, 5e-4)
    print("  right (axis=-1: each query's row sums to 1):\n", right)
    print("  (the snippet's multi_head_attention also concatenates identical heads along "
          "axis 0, stacking tokens: shape (8, 3) instead of (4, 6), and has no W_q, W_k, "
          "W_v per head)")


def trace_gradient(x, wq, wk, wv):
    print("\nD. Backward through example A: L = sum of the outputs a_i")
    with mg.viz.trace() as t:
        q, k, v, scores, w, a = causal_attention(x, wq, wk, wv, 1 / math.sqrt(4))
        mg.label(scores, "scores")
        mg.label(w, "probs")
        a.sum().backward()
    print(t.table())
    ds = t.grads["scores"][0]
    print(" dL/d(scores): the masked (future) entries get exactly 0:\n", ds)
    print(" dL/dW^Q =\n", wq.grad)
    return ds


def main(argv=None):
    """Run the three examples; returns the number of seed numbers found wrong."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="(no effect: this one is fast)")
    parser.add_argument("--out", default=None, help="(no files are written)")
    parser.parse_args(argv)
    c = Checker()
    x, wq, wk, wv = example_a(c)
    example_b(c)
    example_c(c)
    trace_gradient(x, wq, wk, wv)
    print(f"\n{len(c.mismatches)} of the seeds' printed results are wrong:")
    for what in c.mismatches:
        print(f"  - {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
