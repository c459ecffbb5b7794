"""The encoder-decoder Transformer of "Attention Is All You Need", for character-level tasks.

The encoder reads the source with self-attention (padded positions masked out as keys);
the decoder reads the target so far with causal self-attention and attends to the
encoder's output with cross-attention; a linear head, tied to the token embedding, gives
the next character's logits. Post-LayerNorm (the paper's x = LN(x + sublayer(x))) or
pre-LayerNorm (x = x + sublayer(LN(x))); sinusoidal (the paper's) or learned positions;
ReLU (the paper's) or GELU in the feed-forward net. With final_norm (the default) each
stack ends with a LayerNorm, as torch.nn.Transformer's do, so the defaults are
torch.nn.Transformer's layout (tests/test_seq2seq.py copies the weights across):

    config = Seq2SeqConfig(vocab_size=30, block_size=16, n_layer=2, n_head=4, n_embd=64)
    model = Seq2Seq(config)
    logits, loss = model(src, tgt_in, targets)   # int (B, S), (B, T), (B, T); logits (B, T, V)
    out = model.generate(src, max_new_tokens=16, temperature=0.0)   # greedy, (B, <= 16) ids

One vocabulary serves source and target. pad_id pads both (padding is ignored by the
attention and the loss); the decoder input starts with bos_id and a target ends with
eos_id: for the pair ("abc", "cba"), src = "abc", tgt_in = BOS "cba", targets = "cba" EOS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from minigrad.models.errors import ConfigError
from minigrad.models.gpt import sinusoidal_positions

import minigrad as mg
import minigrad.functional as F
from minigrad import nn, optim, random

__all__ = ["Seq2Seq", "Seq2SeqConfig"]

POS_ENCODINGS = ("sinusoidal", "learned")
ACTIVATIONS = ("relu", "gelu")


@dataclass
class Seq2SeqConfig:
    """The model's shape. block_size bounds both the source and the decoder input (BOS +
    target); the feed-forward net is 4 * n_embd wide, as in the paper (512 -> 2048)."""

    vocab_size: int = 16
    block_size: int = 16
    n_layer: int = 2  # encoder layers, and as many decoder layers
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True
    pos_encoding: str = "sinusoidal"  # the paper's fixed table, or "learned" tables
    norm_first: bool = False  # False: post-LN (the paper's); True: pre-LN
    final_norm: bool = True  # a LayerNorm after each stack (torch.nn.Transformer's layout)
    activation: str = "relu"
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(name, f"must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ConfigError("n_embd", f"must be divisible by n_head={self.n_head}, got "
                                        f"{self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", f"must be in [0, 1), got {self.dropout}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ConfigError("pos_encoding", f"must be one of {POS_ENCODINGS}, got "
                                              f"{self.pos_encoding!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError("activation", f"must be one of {ACTIVATIONS}, got "
                                            f"{self.activation!r}")
        ids = (self.pad_id, self.bos_id, self.eos_id)
        for name, value in zip(("pad_id", "bos_id", "eos_id"), ids, strict=True):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value < self.vocab_size:
                raise ConfigError(name, f"must be an id in [0, vocab_size={self.vocab_size}), "
                                        f"got {value!r}")
        if len(set(ids)) != 3:
            raise ConfigError("pad_id", f"pad_id, bos_id and eos_id must differ, got {ids}")


class FeedForward(nn.Module):
    """The position-wise feed-forward net: Linear(C, 4C), ReLU (or GELU), Linear(4C, C)."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.act = nn.ReLU() if config.activation == "relu" else nn.GELU()
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class _Layer(nn.Module):
    """What both layers share: a residual sublayer, with LayerNorm after (post-LN) or
    before (pre-LN)."""

    def __init__(self, config):
        super().__init__()
        self.norm_first = config.norm_first

    def residual(self, x, sublayer, ln):
        if self.norm_first:
            return x + sublayer(ln(x))  # pre-LN
        return ln(x + sublayer(x))  # post-LN, the paper's


class EncoderLayer(_Layer):
    """Self-attention over the source (padding masked out as keys), then feed-forward."""

    def __init__(self, config):
        super().__init__(config)
        C = config.n_embd
        self.self_attn = nn.MultiHeadAttention(C, config.n_head, bias=config.bias,
                                               dropout=config.dropout)
        self.ln_1 = nn.LayerNorm(C, bias=config.bias)
        self.mlp = FeedForward(config)
        self.ln_2 = nn.LayerNorm(C, bias=config.bias)

    def forward(self, x, src_pad):
        x = self.residual(x, lambda h: self.self_attn(h, key_padding_mask=src_pad), self.ln_1)
        return self.residual(x, self.mlp, self.ln_2)


class DecoderLayer(_Layer):
    """Causal self-attention over the target so far, cross-attention to the encoder's
    output (the memory; source padding masked out), then feed-forward."""

    def __init__(self, config):
        super().__init__(config)
        C = config.n_embd
        self.self_attn = nn.MultiHeadAttention(C, config.n_head, bias=config.bias,
                                               dropout=config.dropout, causal=True)
        self.ln_1 = nn.LayerNorm(C, bias=config.bias)
        self.cross_attn = nn.MultiHeadAttention(C, config.n_head, bias=config.bias,
                                                dropout=config.dropout, cross=True)
        self.ln_2 = nn.LayerNorm(C, bias=config.bias)
        self.mlp = FeedForward(config)
        self.ln_3 = nn.LayerNorm(C, bias=config.bias)

    def forward(self, x, memory, src_pad, tgt_pad=None):
        x = self.residual(x, lambda h: self.self_attn(h, key_padding_mask=tgt_pad), self.ln_1)
        x = self.residual(x, lambda h: self.cross_attn(h, context=memory,
                                                       key_padding_mask=src_pad), self.ln_2)
        return self.residual(x, self.mlp, self.ln_3)


class Seq2Seq(nn.Module):
    """Token embedding (scaled by sqrt(n_embd), as in the paper) plus positions, an encoder
    and a decoder of n_layer layers each, and the head tied to the token embedding."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        self.tok_emb = nn.Embedding(config.vocab_size, C)
        self.pos_table = None
        if config.pos_encoding == "learned":
            self.src_pos = nn.Embedding(config.block_size, C)
            self.tgt_pos = nn.Embedding(config.block_size, C)
        else:
            # A plain attribute, not a parameter: fixed, and out of the state_dict.
            self.pos_table = sinusoidal_positions(config.block_size, C)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = nn.ModuleDict(dict(
            layers=nn.ModuleList([EncoderLayer(config) for _ in range(config.n_layer)])))
        self.decoder = nn.ModuleDict(dict(
            layers=nn.ModuleList([DecoderLayer(config) for _ in range(config.n_layer)])))
        if config.final_norm:
            self.encoder.ln_f = nn.LayerNorm(C, bias=config.bias)
            self.decoder.ln_f = nn.LayerNorm(C, bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied, as in the paper
        self._init_weights()

    def _init_weights(self):
        """torch.nn.Transformer's init (Xavier-uniform matrices, zero biases) and the token
        embedding N(0, 1/n_embd), so that scaled by sqrt(n_embd) it has unit variance."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                fan_out, fan_in = module.weight.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                nn.init.uniform_(module.weight, -bound, bound)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.tok_emb.weight, 0.0, self.config.n_embd ** -0.5)
        for name in ("src_pos", "tgt_pos"):
            if hasattr(self, name):
                nn.init.normal_(getattr(self, name).weight, 0.0, 0.02)

    # -- checks -----------------------------------------------------------------------------

    def _ids(self, ids, what):
        """ids as an int64 (B, T) array, checked: 1 <= T <= block_size, ids in the vocab."""
        cfg = self.config
        ids = np.asarray(ids.data if isinstance(ids, mg.Tensor) else ids)
        if ids.ndim != 2:
            raise ValueError(f"Seq2Seq: {what} must have shape (B, T), got {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"Seq2Seq: {what} must hold integer token ids, got dtype "
                            f"{ids.dtype}")
        if ids.shape[1] == 0:
            raise ValueError(f"Seq2Seq: {what} is empty (shape {ids.shape})")
        if ids.shape[1] > cfg.block_size:
            raise ValueError(f"Seq2Seq: {what} length {ids.shape[1]} exceeds block_size "
                             f"{cfg.block_size}")
        if ids.min() < 0 or ids.max() >= cfg.vocab_size:
            bad = ids[(ids < 0) | (ids >= cfg.vocab_size)]
            raise ValueError(f"Seq2Seq: {what} ids must be in [0, vocab_size="
                             f"{cfg.vocab_size}), got {bad[:5].tolist()}")
        return ids.astype(np.int64, copy=False)

    # -- the two stacks ---------------------------------------------------------------------

    def _embed(self, ids, pos, start=0):
        """Token embedding * sqrt(C) + positions start..start+T: (B, T, C)."""
        T = ids.shape[1]
        tok = self.tok_emb(ids) * math.sqrt(self.config.n_embd)  # (B, T, C)
        if self.pos_table is None:
            return self.drop(tok + pos(np.arange(start, start + T)))
        return self.drop(tok + self.pos_table[start:start + T].astype(tok.dtype, copy=False))

    def encode(self, src):
        """The encoder's output (the memory) (B, S, C) and the source padding mask (B, S)
        (True = padding) for source ids (B, S)."""
        src = self._ids(src, "source")
        src_pad = src == self.config.pad_id
        x = self._embed(src, getattr(self, "src_pos", None))  # (B, S, C)
        return self.encode_embedded(x, src_pad), src_pad

    def encode_embedded(self, x, src_pad=None):
        """The encoder from the embedded source x (B, S, C) (tokens + positions): its
        output (B, S, C). For study (viz.check_decoder): x can carry a gradient."""
        for layer in self.encoder.layers:
            x = layer(x, src_pad)
        return self.encoder.ln_f(x) if self.config.final_norm else x

    def decode(self, tgt_in, memory, src_pad):
        """Logits (B, T, vocab) for decoder input ids (B, T), given the encoder's output."""
        tgt_in = self._ids(tgt_in, "target")
        if tgt_in.shape[0] != memory.shape[0]:
            raise ValueError(f"Seq2Seq: source batch {memory.shape[0]} and target batch "
                             f"{tgt_in.shape[0]} differ")
        tgt_pad = tgt_in == self.config.pad_id
        x = self._embed(tgt_in, getattr(self, "tgt_pos", None))  # (B, T, C)
        return self.decode_embedded(x, memory, src_pad, tgt_pad)

    def decode_embedded(self, x, memory, src_pad=None, tgt_pad=None):
        """The decoder and head from the embedded decoder input x (B, T, C) and the
        encoder's output memory (B, S, C): logits (B, T, vocab). For study, as
        encode_embedded."""
        for layer in self.decoder.layers:
            x = layer(x, memory, src_pad, tgt_pad)
        if self.config.final_norm:
            x = self.decoder.ln_f(x)
        return self.lm_head(x)  # (B, T, vocab)

    def forward(self, src, tgt_in, targets=None):
        """Logits (B, T, vocab) for source ids (B, S) and decoder input ids (B, T) (BOS +
        target, padded with pad_id), and the mean cross-entropy against targets (B, T)
        (target + EOS, padded), padding ignored; loss None without targets."""
        memory, src_pad = self.encode(src)
        logits = self.decode(tgt_in, memory, src_pad)
        loss = None
        if targets is not None:
            t = np.asarray(targets.data if isinstance(targets, mg.Tensor) else targets)
            B, T, V = logits.shape
            if t.shape != (B, T):
                raise ValueError(f"Seq2Seq: targets must have shape {(B, T)}, got {t.shape}")
            loss = F.cross_entropy(logits.reshape(B * T, V), t.reshape(-1),
                                   ignore_index=self.config.pad_id)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas):
        """AdamW with weight decay on the matrices and embeddings, none on biases and
        LayerNorm gains (the GPT's groups)."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        return optim.AdamW(groups, lr=learning_rate, betas=betas)

    # -- generation -------------------------------------------------------------------------

    def generate(self, src, max_new_tokens=None, temperature=1.0, top_k=None, use_cache=True):
        """Decode each source (B, S) from BOS, one id at a time, until EOS or max_new_tokens
        (default and at most block_size) ids; returns an int64 Tensor (B, N), N <= the
        limit: the generated ids after BOS, each row ending with its EOS (if it made one)
        and then pad_id. PAD and BOS are never generated. temperature 0 picks the most
        likely id (greedy); otherwise the logits are divided by temperature, cut to the
        top_k ids (None = all) and sampled with minigrad's seeded generator. Records no
        graph; call model.eval() first if the model has dropout.

        use_cache (the default) encodes the source once, computes each decoder layer's
        cross-attention keys and values once, and keeps the decoder's self-attention keys
        and values, so that each step runs the decoder on the one new position only; it
        returns the ids that the full recomputation (use_cache=False) returns.
        """
        cfg = self.config
        limit = cfg.block_size if max_new_tokens is None else max_new_tokens
        if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or \
                not 1 <= limit <= cfg.block_size:
            raise ValueError(f"generate: max_new_tokens must be in [1, block_size="
                             f"{cfg.block_size}] (the decoder sees BOS + the target), got "
                             f"{max_new_tokens!r}")
        if not temperature >= 0.0:
            raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"generate: top_k must be >= 1 or None, got {top_k}")
        rng = random.generator()
        with mg.no_grad():
            memory, src_pad = self.encode(src)
            B = memory.shape[0]
            ids = np.full((B, 1), cfg.bos_id, dtype=np.int64)
            done = np.zeros(B, dtype=bool)
            step = _CachedDecoder(self, memory, src_pad) if use_cache else None
            for t in range(limit):
                if step is None:
                    logits = self.decode(ids, memory, src_pad).data[:, -1, :]  # (B, vocab)
                else:
                    logits = step(ids[:, -1:], t).data[:, -1, :]  # (B, vocab)
                logits = logits.astype(np.float64)
                logits[:, [cfg.pad_id, cfg.bos_id]] = -np.inf  # never generated
                nxt = _pick(logits, temperature, top_k, rng)  # (B,)
                nxt = np.where(done, cfg.pad_id, nxt)
                ids = np.concatenate([ids, nxt[:, None]], axis=1)
                done |= nxt == cfg.eos_id
                if done.all():
                    break
        return mg.Tensor(ids[:, 1:])


class _CachedDecoder:
    """The decoder one position at a time, with its keys and values kept: cross-attention's
    from the encoder's output (computed once), self-attention's growing by one position per
    step. `step(ids (B, 1), t)` returns the logits (B, 1, vocab) of position t. Used under
    no_grad by Seq2Seq.generate."""

    def __init__(self, model, memory, src_pad):
        self.model = model
        B, S, C = memory.shape
        self.nh = model.config.n_head
        self.keep = None if not src_pad.any() else ~src_pad[:, None, None, :]  # (B, 1, 1, S)
        self.cross = []
        for layer in model.decoder.layers:
            k, v = layer.cross_attn.kv_proj(memory).split(C, axis=2)
            self.cross.append((self._heads(k), self._heads(v)))  # (B, nh, S, hs) each
        self.past = [None] * len(model.decoder.layers)  # self-attention (k, v) so far

    def _heads(self, x):
        B, T, C = x.shape
        return x.view(B, T, self.nh, C // self.nh).transpose(1, 2)  # (B, nh, T, hs)

    def _merge(self, att, y):
        B, nh, T, hs = y.shape
        return att.resid_dropout(att.c_proj(y.transpose(1, 2).reshape(B, T, nh * hs)))

    def _self_attention(self, i, att, h):
        q, k, v = (self._heads(a) for a in att.c_attn(h).split(h.shape[-1], axis=2))
        if self.past[i] is not None:
            k, v = mg.cat([self.past[i][0], k], axis=2), mg.cat([self.past[i][1], v], axis=2)
        self.past[i] = (k, v)
        # The one new query is the last position: it may see every key so far.
        return self._merge(att, F.scaled_dot_product_attention(q, k, v))

    def _cross_attention(self, i, att, h):
        k, v = self.cross[i]
        q = self._heads(att.q_proj(h))
        return self._merge(att, F.scaled_dot_product_attention(q, k, v, attn_mask=self.keep))

    def __call__(self, ids, t):
        model = self.model
        x = model._embed(ids, getattr(model, "tgt_pos", None), start=t)  # (B, 1, C)
        for i, layer in enumerate(model.decoder.layers):
            x = layer.residual(x, lambda h, i=i, a=layer.self_attn:
                               self._self_attention(i, a, h), layer.ln_1)
            x = layer.residual(x, lambda h, i=i, a=layer.cross_attn:
                               self._cross_attention(i, a, h), layer.ln_2)
            x = layer.residual(x, layer.mlp, layer.ln_3)
        if model.config.final_norm:
            x = model.decoder.ln_f(x)
        return model.lm_head(x)  # (B, 1, vocab)


def _pick(logits, temperature, top_k, rng):
    """The next id (B,) from logits (B, vocab): argmax at temperature 0, else sampled."""
    if temperature == 0.0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    logits = logits / temperature
    if top_k is not None:
        k = min(int(top_k), logits.shape[-1])
        kth = np.partition(logits, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random((logits.shape[0], 1)) * cdf[:, -1:]
    return np.argmax(cdf > u, axis=-1).astype(np.int64)
