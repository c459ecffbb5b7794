"""The whole Transformer of "Attention Is All You Need": encoder, decoder, cross-attention.

The course's central figure, built and studied with minigrad. The encoder reads the source
with self-attention; the decoder reads the target so far with *masked* (causal)
self-attention and, in every layer, attends to the encoder's output with cross-attention:
queries from the decoder, keys and values from the encoder. Positions are the paper's
sinusoidal table; LayerNorm comes after each residual sublayer (post-LN), as in the paper.

This script
1. builds the model and names its three kinds of attention;
2. trains it to reverse strings of letters (`minigrad seq2seq --task reverse` does the same);
3. proves with gradients that target t does not see target s > t, but sees every source
   position (viz.check_decoder);
4. traces one backward and prints the gradient norms per head of every attention block,
   labelled encoder self-, decoder causal self- or cross-attention;
5. draws the cross-attention of "abcdefghij": reversing makes it the anti-diagonal
   (decoder step t reads source position n-1-t), and checks that from the numbers.

    python examples/07_encoder_decoder.py            # about a minute and a half on 2 cores
    python examples/07_encoder_decoder.py --fast     # a short run (the test's)
"""

import argparse
import os
import sys
import tempfile

import numpy as np
from minigrad.models.checkpoint import model_from_checkpoint
from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig
from minigrad.models.seq2seq_train import Seq2SeqTrainConfig, train_seq2seq

import minigrad as mg
from minigrad import viz


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a short training run")
    parser.add_argument("--out", default=".", help="directory for the PNG")
    args = parser.parse_args(argv)

    # 1. The model and its attention layers ------------------------------------------------
    print("1. The encoder-decoder and its three kinds of attention")
    mg.manual_seed(0)
    demo = Seq2Seq(Seq2SeqConfig(vocab_size=29, block_size=13, n_layer=2, n_head=4,
                                 n_embd=64))
    n_params = sum(p.size for p in demo.parameters())
    print(f"   {n_params:,} parameters; attention layers in the order they run:")
    for label, layer in zip(viz.attention_labels(demo), viz.attention_modules(demo),
                            strict=True):
        print(f"   - {label:<40} {layer.kind}")
    print("   " + viz.explain(viz.attention_modules(demo)[3]).replace("\n", "\n   "))

    # 2. Train on `reverse` -----------------------------------------------------------------
    steps = 150 if args.fast else 400
    print(f"\n2. Training on reverse for {steps} steps (minigrad seq2seq --task reverse)")
    with tempfile.TemporaryDirectory() as run:
        cfg = Seq2SeqTrainConfig(task="reverse", out_dir=run, max_iters=steps,
                                 eval_interval=steps, eval_subset=100,
                                 eval_examples=200 if args.fast else 1000, progress=False)
        summary = train_seq2seq(cfg)
        model, tok = model_from_checkpoint(run, kind="seq2seq")
    for src, tgt, pred in summary["examples"][:3]:
        print(f"   {src!r} -> {pred!r} ({'ok' if pred == tgt else 'want ' + repr(tgt)})")
    print(f"   exact match on held-out strings: {summary['correct']}/{summary['total']}")

    # 3. What the decoder sees ---------------------------------------------------------------
    print("\n3. check_decoder: d out[t] / d target[s] and d out[t] / d source[s]")
    report = viz.check_decoder(model, T=6, S=8)
    print("   " + str(report).replace("\n", "\n   "))

    # 4. One backward, block by block --------------------------------------------------------
    print("\n4. Gradient norms per head in one backward (viz.trace)")
    src_text = "abcdefghij"
    src = tok.encode(src_text)[None, :]
    tgt = tok.encode(src_text[::-1])
    tgt_in, targets = np.concatenate([[1], tgt])[None, :], np.concatenate([tgt, [2]])[None, :]
    with viz.trace() as t:
        model(src, tgt_in, targets)[1].backward()
    print("   " + t.attention_table(viz.attention_labels(model)).replace("\n", "\n   "))

    # 5. The cross-attention picture ---------------------------------------------------------
    print(f"\n5. Cross-attention for {src_text!r} -> {src_text[::-1]!r}")
    maps = viz.attention_maps(model, src, tgt_in)
    cross = [m for m in maps if m["kind"] == "cross"]
    last = cross[-1]["weights"][0].mean(axis=0)  # (T, S): the last layer, heads averaged
    n = len(src_text)
    reads = np.argmax(last[:n], axis=-1)  # the source position each decoder step reads most
    on_anti = int(np.sum(reads == np.arange(n)[::-1]))
    print(f"   decoder step t reads source position: {reads.tolist()}")
    print(f"   anti-diagonal (n-1-t):                {list(range(n - 1, -1, -1))}")
    print(f"   {on_anti} of {n} steps read the mirrored position")
    try:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "seq2seq_cross_attention.png")
        viz.plot_attention(cross, "\u25b8" + src_text[::-1], path, key_chars=src_text,
                           query_axis="decoder input", key_axis="source",
                           title="cross-attention after training on reverse")
        print(f"   wrote {path}")
    except ImportError as e:
        print(f"   (no picture: {e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
