"""Every script in examples/ runs (in its --fast mode) and shows what it claims to show."""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run(name, capsys, *args):
    """Import examples/<name>.py and run its main(["--fast", *args]); returns (status, out)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status = module.main(["--fast", *args])
    return status, capsys.readouterr().out


def test_every_example_is_tested():
    scripts = sorted(f[:-3] for f in os.listdir(EXAMPLES) if re.match(r"\d\d_.*\.py$", f))
    tested = sorted(n for n in globals() if n.startswith("test_0"))
    assert [s[:2] for s in scripts] == [t[5:7] for t in tested]


def test_01_seed_self_attention(capsys):
    status, out = run("01_seed_self_attention", capsys)
    assert status == 0
    # Example A: the seed's q1 = x1 W^Q is wrong; the right one is [0.2, 0.6, 0.4, 0.7].
    assert "SEED WRONG q1 = x1 W^Q: seed prints [0.2000, 0.8000, 0.6000, 0.8000], correct " \
           "is [0.2000, 0.6000, 0.4000, 0.7000]" in out
    assert "SEED WRONG score(x1,x1) from the seed's own q1, k1: seed prints 1.4000, " \
           "correct is 1.3200" in out
    # Example B: the printed softmax is not a distribution; its P V product is right.
    assert "rows sum to [0.8040 1.0732 0.8367]" in out
    assert "ok        the seed's P times V" in out
    assert "SEED WRONG X = IE + PE, row 3" in out
    # Example C: the masked matrix and the axis=0 softmax.
    assert "     CAT 0.308 0.692 0.000 0.000 0.000 0.000" in out
    assert "SEED WRONG snippet's attention weights (axis=0)" in out
    # Example D: no gradient reaches the masked scores.
    assert "the masked (future) entries get exactly 0" in out
    assert re.search(r"\n(\d+) of the seeds' printed results are wrong", out)
    assert "ok        the seed's P times V" not in out.split("are wrong:")[1]


def test_02_why_sqrt_dk(capsys, tmp_path):
    status, out = run("02_why_sqrt_dk", capsys, "--out", str(tmp_path))
    assert status == 0
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert [int(r[0]) for r in rows] == [4, 64, 512]
    raw_std, scaled_std = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
    raw_max = [float(r[3]) for r in rows]
    assert raw_std[-1] > 10 * raw_std[0] and all(0.8 < s < 1.2 for s in scaled_std)
    assert raw_max[-1] > 0.8  # saturated without the scaling
    png = tmp_path / "why_sqrt_dk.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_03_heads_on_char_model(capsys, tmp_path):
    status, out = run("03_heads_on_char_model", capsys, "--out", str(tmp_path))
    assert status == 0
    assert "1 head(s) of size 16" in out and "4 head(s) of size 4" in out
    assert "layer 0 head 3:" in out
    for n in (1, 4):
        assert (tmp_path / f"heads_{n}.png").read_bytes()[:4] == b"\x89PNG"


def test_04_new_op_swish(capsys):
    status, out = run("04_new_op_swish", capsys)
    assert status == 0
    assert "gradcheck passed: True" in out
    assert ("mg.testing.check_op(swish, torch.nn.functional.silu, shapes=[(3, 4), (2, 1, 5), "
            "()]) passed") in out
    # The broken backward: both the comparison with torch and gradcheck fail on each shape.
    assert "SwishForgotProduct: 6 of 12 checks failed" in out
    assert "SwishForgotProduct[1] (2, 1, 5): backward: input 0's gradient differs" in out
    assert "SwishForgotProduct[2] (): gradcheck: input 0, index ()" in out
    assert "no `backward:` line in its docstring" in out  # before it is written
    assert "backward: dx = g * (s + x * s * (1 - s))" in out


def test_05_break_it(capsys):
    status, out = run("05_break_it", capsys)
    assert status == 0
    assert "gradcheck caught 5 of 5 broken backward rules" in out
    assert "MeanForgotCount: caught\n  gradcheck: input 0, index" in out
    assert "analytic gradient" in out and "!= numeric" in out


def test_06_attention_backward_by_hand(capsys):
    status, out = run("06_attention_backward_by_hand", capsys)
    assert status == 0
    assert "hand-written backward equals autograd" in out
    diffs = [float(m) for m in re.findall(r"max \|hand - autograd\| = (\S+)", out)]
    assert len(diffs) == 10 and max(diffs) < 1e-12


def test_07_encoder_decoder(capsys, tmp_path):
    status, out = run("07_encoder_decoder", capsys, "--out", str(tmp_path))
    assert status == 0
    for label in ("encoder layer 0 self-attention", "decoder layer 0 causal self-attention",
                  "decoder layer 1 cross-attention"):
        assert label in out
    assert "target causal: PASSED" in out and "source: PASSED" in out
    assert re.search(r"exact match on held-out strings: \d+/200", out)
    assert re.search(r"\d+ of 10 steps read the mirrored position", out)
    assert (tmp_path / "seq2seq_cross_attention.png").read_bytes()[:4] == b"\x89PNG"
