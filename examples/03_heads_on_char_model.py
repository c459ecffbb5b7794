"""One attention head or several, on the character model.

Two small GPTs with the same width (n_embd = 64) and the same number of parameters are
trained on tiny Shakespeare: one with a single head of size 64, one with 4 heads of size
16 ("Multi-Head Attention": each head attends with its own W_q^h, W_k^h, W_v^h, and the
heads' outputs are concatenated and projected by W^O). Then, for one line of text, the
script prints the validation losses, how peaked each head's attention is (entropy in bits:
0 = attends to one position, log2(T) = uniform), and draws every head's map, so one can
see the 4-head model's heads specialise (previous character, start of the word, ...).

    python examples/03_heads_on_char_model.py --out out/examples        # ~ a minute
    python examples/03_heads_on_char_model.py --fast                    # a few steps
"""

import argparse
import os
import sys

import numpy as np
from minigrad.models.data import CharDataset, load_text
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
from minigrad import viz

TEXT = "First Citizen:\nBefore we proceed"


def train(data, n_head, steps, block_size, n_embd, n_layer, seed=0):
    """A GPT trained for `steps` AdamW steps; returns (model, val loss)."""
    mg.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=data.vocab_size, block_size=block_size, n_layer=n_layer,
                          n_head=n_head, n_embd=n_embd))
    opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.99))
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = data.get_batch("train", 16, block_size, rng)
        _, loss = model(x, targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mg.no_grad():
        losses = [model(*data.get_batch("val", 16, block_size, rng))[1].item()
                  for _ in range(4)]
    return model, float(np.mean(losses))


def main(argv=None):
    """Train both models, print losses and head entropies, write the maps; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="a few steps on a tiny model")
    parser.add_argument("--out", default="out/examples", help="directory for the plots")
    args = parser.parse_args(argv)
    steps, n_embd, n_layer = (5, 16, 1) if args.fast else (400, 64, 2)
    block_size = 32
    data = CharDataset(load_text("shakespeare")[: 50_000 if args.fast else 1_000_000])
    ids = data.tokenizer.encode(TEXT)[None, :block_size]
    os.makedirs(args.out, exist_ok=True)
    for n_head in (1, 4):
        model, val = train(data, n_head, steps, block_size, n_embd, n_layer)
        maps = viz.attention_maps(model, ids)
        print(f"{n_head} head(s) of size {n_embd // n_head}: {model.num_parameters():,} "
              f"parameters, val loss {val:.3f} after {steps} steps")
        for layer, m in enumerate(maps):
            ent = [viz.entropy_bits(m["weights"][0, h]) for h in range(n_head)]
            print(f"  layer {layer}: attention entropy per head (bits) "
                  + " ".join(f"{e:.2f}" for e in ent))
        path = os.path.join(args.out, f"heads_{n_head}.png")
        viz.plot_attention(maps, TEXT, path, title=f"{n_head} head(s), val loss {val:.2f}")
        print(f"  wrote {path}")
        # Where the last character looks, head by head: "this character attends to that
        # one because its q.k score is the largest in the row".
        print("  " + viz.attention_report(maps, TEXT, -1, top=2).replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
