"""A decoder-only transformer (GPT) laid out exactly as nanoGPT's model.py.

Pre-LayerNorm blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))), learned positional embeddings
(or, as an option for study, the fixed sinusoidal table of "Attention Is All You Need"),
a GELU MLP of width 4 * n_embd, and the output projection tied to the token embedding.
Parameter names and shapes are GPT-2's / nanoGPT's, so a state_dict moves between this
model and PyTorch as plain arrays:

    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(config)
    logits, loss = model(x, targets=y)      # x, y int (B, T); logits (B, T, vocab)
    out = model.generate(x[:1, :8], 100, temperature=0.8, top_k=40)   # (1, 108) ids
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from minigrad.models.errors import ConfigError

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, optim, random
from minigrad.ops.embedding import ids_out_of_range

__all__ = ["GPT", "GPTConfig", "KVCache", "sinusoidal_positions"]

POS_ENCODINGS = ("learned", "sinusoidal")


@dataclass
class GPTConfig:
    """The model's shape; the defaults are nanoGPT's CPU "baby GPT" for tiny Shakespeare."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, as GPT-2
    pos_encoding: str = "learned"  # "learned" (a wpe table) or "sinusoidal" (fixed, no weights)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"GPTConfig: {name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} must be divisible by "
                             f"n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ValueError(f"GPTConfig: pos_encoding must be one of {POS_ENCODINGS}, "
                             f"got {self.pos_encoding!r}")


def check_sampling(temperature, top_k):
    """Refuse sampling settings that mean nothing: a ConfigError (a ValueError) naming the
    setting, e.g. `temperature must be > 0, got 0`."""
    if not temperature > 0.0:
        raise ConfigError("temperature", f"must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError("top_k", f"must be >= 1 or None, got {top_k}")


def sinusoidal_positions(block_size, n_embd):
    """The fixed table of "Attention Is All You Need", (block_size, n_embd) float32:
    PE[pos, 2i] = sin(pos / 10000^(2i/n_embd)), PE[pos, 2i+1] = cos(same angle)."""
    pos = np.arange(block_size, dtype=np.float64)[:, None]  # (T, 1)
    inv_freq = 10000.0 ** (-np.arange(0, n_embd, 2, dtype=np.float64) / n_embd)  # (ceil(C/2),)
    angles = pos * inv_freq  # (T, ceil(C/2))
    table = np.empty((block_size, n_embd))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : n_embd // 2])
    return table.astype(np.float32)


class MLP(nn.Module):
    """The position-wise feed-forward net: Linear(C, 4C), GELU, Linear(4C, C), dropout."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, norm=None):
        """c_proj(gelu(c_fc(x))), then dropout; of norm(x) when norm (a LayerNorm) is given.

        norm and c_fc run as one op, and so do gelu and c_proj: each keeps only its input for
        backward, which makes the normalised rows and the GELU's output again (an elementwise
        pass each) instead of holding them from forward to backward (5C floats a token).
        """
        h = self.c_fc(x, norm=norm)  # (B, T, 4C)
        y = F.gelu_linear(h, self.c_proj.weight, self.c_proj.bias, self.gelu.approximate)
        return self.dropout(y)  # (B, T, C)


class Block(nn.Module):
    """One pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = nn.MultiHeadAttention(config.n_embd, config.n_head, bias=config.bias,
                                          dropout=config.dropout, causal=True)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        # attn(ln_1(x)) and mlp(ln_2(x)), each LayerNorm run with the projection after it
        x = x + self.attn(x, norm=self.ln_1)
        return x + self.mlp(x, norm=self.ln_2)


class GPT(nn.Module):
    """nanoGPT's GPT: token (+ position) embeddings, n_layer blocks, a final LayerNorm and
    the language-model head, whose weight is the token embedding's (tied)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        layers = {"wte": nn.Embedding(config.vocab_size, config.n_embd)}
        self.pos_table = None
        if config.pos_encoding == "learned":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        else:
            # A plain attribute, not a parameter: it is fixed and stays out of the state_dict.
            self.pos_table = sinusoidal_positions(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(dict(
            **layers,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf, 2017): one Parameter under both names, as nanoGPT.
        self.lm_head.weight = self.transformer.wte.weight
        self._init_weights()

    def _init_weights(self):
        """nanoGPT's init: N(0, 0.02) weights, zero biases, and the projections into the
        residual stream scaled by 1/sqrt(2 n_layer) (GPT-2), so the stream's variance does
        not grow with depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, 0.0, 0.02)
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(param, 0.0, std)

    def forward(self, idx, targets=None):
        """Logits (B, T, vocab) for integer ids idx (B, T), and the mean cross-entropy
        against targets (B, T) (id -1 = ignored) or None without targets."""
        ids = idx.data if isinstance(idx, mg.Tensor) else np.asarray(idx)
        cfg = self.config
        if ids.ndim != 2:
            raise ValueError(f"GPT: idx must have shape (B, T), got {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"GPT: idx must hold integer token ids, got dtype {ids.dtype}")
        B, T = ids.shape
        if T > cfg.block_size:
            raise ValueError(f"GPT: sequence length {T} exceeds block_size {cfg.block_size}")
        bad = ids_out_of_range(ids, cfg.vocab_size)
        if bad:
            raise ValueError(f"GPT: token ids must be in [0, vocab_size={cfg.vocab_size}), "
                             f"got {bad}")

        tok_emb = self.transformer.wte(ids)  # (B, T, C)
        x = self.transformer.drop(tok_emb + self._positions(0, T, tok_emb.dtype))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(x, norm=self.transformer.ln_f)  # (B, T, vocab)

        loss = None
        if targets is not None:
            t = targets.data if isinstance(targets, mg.Tensor) else np.asarray(targets)
            loss = F.cross_entropy(logits.reshape(B * T, cfg.vocab_size), t.reshape(-1),
                                   ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW with nanoGPT's two groups: weight decay on every parameter with ndim >= 2
        (matmul weights and embeddings), none on biases and LayerNorm gains. The tied
        embedding / lm_head weight is one parameter and is counted once."""
        params = [p for p in self.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        return optim.AdamW(groups, lr=learning_rate, betas=betas)

    def _positions(self, start, T, dtype):
        """Position embeddings (T, C) of the positions start .. start + T - 1."""
        if self.pos_table is None:
            return self.transformer.wpe(np.arange(start, start + T))  # (T, C)
        return self.pos_table[start:start + T].astype(dtype, copy=False)  # (T, C)

    def _cached_logits(self, ids, cache):
        """Logits (B, vocab) ndarray of the last of `ids` (B, T), the ids that follow the
        cache.length positions in `cache`; their keys and values are appended to it.

        The same layers as forward, applied to the new positions only: a new query attends
        to the cached keys and values of every earlier position and to its own. Call it
        under no_grad; the cache holds arrays, never a graph.
        """
        B, T = ids.shape
        start = cache.length
        tok_emb = self.transformer.wte(ids)  # (B, T, C)
        x = self.transformer.drop(tok_emb + self._positions(start, T, tok_emb.dtype))
        for layer, block in enumerate(self.transformer.h):
            x = x + _cached_attention(block.attn, block.ln_1(x), cache, layer)
            x = x + block.mlp(x, norm=block.ln_2)
        cache.length += T
        x = self.transformer.ln_f(x[:, -1:, :])  # only the last position is sampled from
        return self.lm_head(x).data[:, -1, :]  # (B, vocab)

    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """Yield the next ids (B,) one step at a time: the generator behind `generate`,
        for callers that print as they go. See `generate` for the arguments."""
        try:
            check_sampling(temperature, top_k)
        except ValueError as e:
            raise ValueError(f"generate: {e}") from None
        if max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
        ids = np.asarray(idx.data if isinstance(idx, mg.Tensor) else idx)
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"generate: idx must have shape (B, T) with T >= 1, got {ids.shape}")
        ids = ids.astype(np.int64, copy=False)
        k = None if top_k is None else min(int(top_k), self.config.vocab_size)
        block_size = self.config.block_size
        rng = random.generator()
        cache = None
        for _ in range(max_new_tokens):
            # Crop the context: the model has positions for block_size tokens only. no_grad
            # around the forward only: a decorator would not cover a generator's body, and
            # holding it across `yield` would switch gradients off in the caller's code too.
            with mg.no_grad():
                if not use_cache or ids.shape[1] > block_size:
                    # Past block_size the window slides: every id moves to the position
                    # before, so every key and value changes and a cache cannot help.
                    logits = self(ids[:, -block_size:])[0].data[:, -1, :]  # (B, vocab)
                elif cache is None:
                    cache = KVCache(self.config, ids.shape[0], self.transformer.wte.weight.dtype)
                    logits = self._cached_logits(ids, cache)  # the whole prompt
                else:
                    logits = self._cached_logits(ids[:, -1:], cache)  # the newest id only
            logits = logits.astype(np.float64) / temperature  # (B, vocab)
            if k is not None:
                kth = np.partition(logits, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)
                logits = np.where(logits < kth, -np.inf, logits)
            probs = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (B, vocab)
            cdf = np.cumsum(probs, axis=-1)
            # Inverse-CDF sampling: the first id whose cumulative mass exceeds u * total.
            # Strict ">" never picks an id of zero probability (e.g. one cut by top_k).
            u = rng.random((ids.shape[0], 1)) * cdf[:, -1:]
            next_ids = np.argmax(cdf > u, axis=-1).astype(np.int64)  # (B,)
            ids = np.concatenate([ids, next_ids[:, None]], axis=1)
            yield next_ids

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, use_cache=True):
        """Continue idx (B, T) by max_new_tokens sampled ids; returns an int64 Tensor
        (B, T + max_new_tokens).

        Each step feeds the last block_size ids, divides the last position's logits by
        temperature (> 0), keeps only the top_k most likely ids (None = all) and samples
        from the softmax with minigrad's seeded generator (mg.manual_seed). Runs without
        building a graph. Call model.eval() first if the model has dropout.

        use_cache=True keeps every layer's keys and values (a KVCache), so each step runs
        the newest id only instead of the whole context; it returns the same ids as
        use_cache=False. Once the ids outgrow block_size the window slides, every id's
        position changes at each step, and the whole window is run again (as without cache).
        """
        ids = np.asarray(idx.data if isinstance(idx, mg.Tensor) else idx)
        new = list(self.stream(ids, max_new_tokens, temperature, top_k, use_cache))
        out = np.concatenate([ids.astype(np.int64)] + [n[:, None] for n in new], axis=1)
        return mg.Tensor(out)


class KVCache:
    """The keys and values of every layer for the positions a generation has run so far.

    keys[layer] and values[layer] are preallocated (B, n_head, block_size, head_size)
    arrays, of which the first `length` positions are filled.
    """

    def __init__(self, config, batch_size, dtype):
        shape = (batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.keys = [np.zeros(shape, dtype) for _ in range(config.n_layer)]
        self.values = [np.zeros(shape, dtype) for _ in range(config.n_layer)]
        self.length = 0


def _cached_attention(attn, x, cache, layer):
    """attn (a MultiHeadAttention) on x (B, T, C), the positions after cache.length: stores
    their keys and values in the cache and attends to every position up to each query."""
    B, T, C = x.shape
    nh, hs = attn.num_heads, C // attn.num_heads
    start, end = cache.length, cache.length + T
    q, k, v = attn.c_attn(x).split(C, axis=2)
    keys, values = cache.keys[layer], cache.values[layer]
    keys[:, :, start:end] = k.data.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)  # (B, nh, T, hs)
    values[:, :, start:end] = v.data.reshape(B, T, nh, hs).transpose(0, 2, 1, 3)
    q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
    # Query i is position start + i: it may see keys 0 .. start + i.
    mask, causal = None, False
    if start == 0:
        causal = T > 1
    elif T > 1:
        mask = np.tril(np.ones((T, end), dtype=bool), k=start)  # (T, end)
    dropout_p = attn.attn_dropout.p if attn.training else 0.0
    y = F.scaled_dot_product_attention(q, mg.Tensor(keys[:, :, :end]),
                                       mg.Tensor(values[:, :, :end]), mask,
                                       is_causal=causal, dropout_p=dropout_p)  # (B, nh, T, hs)
    y = y.transpose(1, 2).reshape(B, T, C)
    return attn.resid_dropout(attn.c_proj(y))  # (B, T, C)
