"""Small models and reference numbers for the explorer tests (Python and browser)."""

import numpy as np
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, viz

TEXT = "to be or not"


def tiny_gpt(seed=0):
    """A 2-block, 2-head GPT over the 26 letters and space; (model, ids)."""
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=27, block_size=16, n_layer=2, n_head=2, n_embd=16))
    ids = np.array([26 if c == " " else ord(c) - 97 for c in TEXT])
    return model, ids


class Tagger(nn.Module):
    """A user's own model: embedding, one non-causal MultiHeadAttention with a band mask
    (attn_mask, True = may attend), and a linear head."""

    def __init__(self, vocab=11, dim=8, heads=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mix = nn.MultiHeadAttention(dim, heads)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        x = self.emb(ids)  # (1, T, dim)
        T = x.shape[1]
        band = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]) <= 2  # (T, T)
        return self.head(x + self.mix(x, attn_mask=band))


def losses_of(logits, targets):
    """Per-position losses (T,) of logits (1, T, V) against targets (-100 = none)."""
    return F.cross_entropy(logits[0], targets, reduction="none")


def traced(model, ids, choice):
    """viz.trace() of one forward and backward of the loss `choice` ("mean" or a
    position): the reference numbers for the page. Returns the Trace."""
    ids = np.asarray(ids)[None, :]
    targets = np.full(ids.shape[1], -100)
    targets[:-1] = ids[0, 1:]
    model.eval()
    with viz.trace() as tr:
        out = model(ids)
        logits = out[0] if isinstance(out, tuple) else out
        losses = losses_of(logits, targets)
        loss = losses.sum() / (ids.shape[1] - 1) if choice == "mean" else losses[choice]
        loss.backward()
    model.zero_grad()
    return tr


def backward_from_d_out(block, d_out):
    """Attention's backward from dL/dO, as the page computes it: dict of (heads, ., .)."""
    P, q, k, v = block["probs"], block["q"], block["k"], block["v"]
    d_out = d_out.astype(np.float64)
    dP = d_out @ v.transpose(0, 2, 1)  # (h, T, S)
    dS = P * (dP - (dP * P).sum(-1, keepdims=True))
    sc = 1 / np.sqrt(q.shape[-1])
    return {"dP": dP, "dS": dS, "dq": dS @ k * sc, "dk": dS.transpose(0, 2, 1) @ q * sc,
            "dv": P.transpose(0, 2, 1) @ d_out}
