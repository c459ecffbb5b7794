"""The explorer page in a real browser (headless Chromium through Selenium): it loads with
no console error and no request leaving the machine, clicks update the views, the loss
picker changes the gradients, and the numbers read back equal Python's.

Without Chromium, chromedriver or selenium these tests skip with a one-line reason, unless
MINIGRAD_REQUIRE_BROWSER=1 (as in CI), which turns a missing browser into a failure."""

import json
import os
import shutil

import numpy as np
import pytest
from minigrad.models.checkpoint import save_checkpoint
from minigrad.models.data import load_text
from minigrad.models.gpt import GPT, GPTConfig

import minigrad as mg
from minigrad import viz
from minigrad.cli import main
from tests.explore_models import TEXT, Tagger, backward_from_d_out, tiny_gpt, traced

REQUIRE = os.environ.get("MINIGRAD_REQUIRE_BROWSER") == "1"
TRACE_NAMES = {"dP": "probs", "dS": "masked scores", "dq": "q", "dk": "k", "dv": "v"}


def _browser_paths():
    """(chromium, chromedriver) or a one-line reason why the browser tests cannot run."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome")) if p), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return "Chromium and chromedriver not found (apt-get install chromium chromium-driver)"
    return chromium, driver


@pytest.fixture(scope="module")
def browser():
    found = _browser_paths()
    if isinstance(found, str):
        if REQUIRE:
            pytest.fail(f"MINIGRAD_REQUIRE_BROWSER=1 but {found}")
        pytest.skip(found)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1300", "--no-first-run"):
        options.add_argument(arg)
    options.binary_location = found[0]
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    yield driver
    driver.quit()


def open_page(browser, path, timeout=30):
    """Load a page, wait for the explorer, return (console errors, requested URLs)."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")
    browser.get_log("performance")
    browser.get(path.as_uri())
    WebDriverWait(browser, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1' || "
                                   "document.getElementById('app').textContent"
                                   ".startsWith('explorer failed')"))
    assert browser.execute_script("return document.body.dataset.ready") == "1", \
        browser.find_element("id", "app").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return errors, urls


def js(browser, script, *args):
    return browser.execute_script(script, *args)


def page_values(browser, name, choice, block, head):
    values = js(browser, "return explorer.values(arguments[0], arguments[1], arguments[2], "
                         "arguments[3])", name, choice, block, head)
    return np.array([-np.inf if v is None else v for v in values], dtype=np.float64)


@pytest.fixture(scope="module")
def gpt_page(tmp_path_factory):
    model, ids = tiny_gpt()
    ex = viz.explore(model, ids, labels=TEXT)
    path = tmp_path_factory.mktemp("pages") / "gpt.html"
    ex.save(path)
    return model, ids, ex, path


def test_loads_with_no_error_and_no_request(browser, gpt_page):
    _, _, ex, path = gpt_page
    errors, urls = open_page(browser, path)
    assert errors == []
    assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
    thumbs = browser.find_elements("css selector", "#model-view .thumb")
    assert len(thumbs) == sum(b["heads"] for b in ex.blocks) == 4
    buttons = browser.find_elements("css selector", "#loss-picker button")
    assert len(buttons) == len(ex.choices) == len(TEXT)  # mean + every position but the last


def test_clicks_update_the_views(browser, gpt_page):
    from selenium.webdriver.common.action_chains import ActionChains

    model, ids, ex, path = gpt_page
    open_page(browser, path)
    title = browser.find_element("id", "head-title")
    assert "block 0" in title.text and "head 0" in title.text
    before = browser.find_element("id", "heatmap").screenshot_as_png
    browser.find_element("css selector", '.thumb[data-block="1"][data-head="1"]').click()
    assert "block 1" in title.text and "head 1" in title.text
    assert browser.find_element("id", "heatmap").screenshot_as_png != before
    assert "sel" in browser.find_element(
        "css selector", '.thumb[data-block="1"][data-head="1"]').get_attribute("class")

    # click the heatmap cell (t, s) = (7, 3) with the mouse
    canvas = browser.find_element("id", "heatmap")
    pad, cell = (float(canvas.get_attribute(f"data-{k}")) for k in ("pad", "cell"))
    t, s = 7, 3
    x = pad + (s + 0.5) * cell - canvas.size["width"] / 2
    y = pad + (t + 0.5) * cell - canvas.size["height"] / 2
    ActionChains(browser).move_to_element_with_offset(canvas, int(x), int(y)).click().perform()
    why = browser.find_element("id", "why")
    assert "query t = 7" in why.text and "key s = 3" in why.text
    assert browser.find_element("id", "tip").text.startswith("query 7")

    def value(key):
        return float(why.find_element("css selector", f'.num[data-key="{key}"]')
                     .get_attribute("data-value"))

    maps = viz.attention_maps(model, ids[None, :])
    np.testing.assert_allclose(value("score"), maps[1]["scores"][0, 1, t, s], rtol=1e-5)
    np.testing.assert_allclose(value("P"), maps[1]["weights"][0, 1, t, s], rtol=1e-6)
    tr = traced(model, ids, "mean")
    dP, dS = tr.grads["probs"][1][0, 1], tr.grads["masked scores"][1][0, 1]
    np.testing.assert_allclose(value("dP"), dP[t, s], rtol=1e-4)
    np.testing.assert_allclose(value("rowsum"), (dP[t] * maps[1]["weights"][0, 1, t]).sum(),
                               rtol=1e-4)
    np.testing.assert_allclose(value("dS"), dS[t, s], rtol=1e-4)


def test_arrow_keys_move_the_cell(browser, gpt_page):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, gpt_page[3])
    js(browser, "explorer.setCell(5, 2)")
    body = browser.find_element("tag name", "body")
    body.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_LEFT)
    assert js(browser, "return explorer.state.cell") == [7, 1]
    assert "query t = 7" in browser.find_element("id", "why").text


def test_labels_cannot_break_the_page(browser, tmp_path):
    model, ids = tiny_gpt()
    labels = "</script>&<b"
    path = tmp_path / "escape.html"
    viz.explore(model, ids, labels=labels, title="<i>x</i>").save(path)
    errors, _ = open_page(browser, path)
    assert errors == []
    assert js(browser, "return explorer.meta.labels[0].join('')") == labels
    assert browser.title == "<i>x</i>"


def test_loss_picker_changes_the_gradient_views(browser, gpt_page):
    model, ids, ex, path = gpt_page
    open_page(browser, path)

    def bars(key):
        return [float(e.get_attribute("data-value")) for e in browser.find_elements(
            "css selector", f'#grad-bars .barrow[data-key="{key}"] .b')]

    mean_dq = bars("ndq")
    heat = browser.find_element("id", "heatmap")
    browser.find_element("css selector", '#view-tabs button[data-view="dS"]').click()
    mean_heat = heat.screenshot_as_png
    browser.find_element("css selector", '#loss-picker button[data-choice="5"]').click()
    position = ex.choices[5]
    assert f"position {position}" in browser.find_element("id", "loss-info").text
    assert bars("ndq") != mean_dq
    assert heat.screenshot_as_png != mean_heat
    tr = traced(model, ids, position)
    dq = tr.grads["q"][0][0, 0]  # block 0, head 0
    np.testing.assert_allclose(bars("ndq"), np.linalg.norm(dq, axis=-1), rtol=1e-4,
                               atol=1e-9)
    # a loss at position p sends no gradient to queries after p
    assert all(v == 0.0 for v in bars("ndq")[position + 1:])


@pytest.mark.parametrize("choice", ["mean", 4])
def test_every_number_equals_python(browser, gpt_page, choice):
    model, ids, ex, path = gpt_page
    open_page(browser, path)
    c = ex.choices.index(choice)
    maps = viz.attention_maps(model, ids[None, :])
    tr = traced(model, ids, choice)
    for b, block in enumerate(ex.blocks):
        for h in range(block["heads"]):
            P = page_values(browser, "P", c, b, h).reshape(block["T"], block["S"])
            np.testing.assert_allclose(P, maps[b]["weights"][0, h], rtol=1e-5, atol=1e-7)
            S = page_values(browser, "S", c, b, h).reshape(P.shape)
            ok = np.isfinite(S)
            np.testing.assert_allclose(S[ok], maps[b]["scores"][0, h][ok], rtol=1e-5,
                                       atol=1e-6)
            for name in ("q", "k", "v"):
                ref = block[name][h]
                got = page_values(browser, name, c, b, h).reshape(ref.shape)
                np.testing.assert_array_equal(got, ref)
            for name, label in TRACE_NAMES.items():
                ref = tr.grads[label][b][0, h]
                got = page_values(browser, name, c, b, h).reshape(ref.shape)
                np.testing.assert_allclose(got, ref, rtol=1e-4,
                                           atol=1e-6 * max(np.abs(ref).max(), 1e-12))


def test_masked_cells_have_exactly_zero_gradient(browser, gpt_page):
    _, _, ex, path = gpt_page
    open_page(browser, path)
    note = browser.find_element("id", "mask-note")
    n = len(TEXT)
    assert note.get_attribute("data-masked-cells") == str(n * (n - 1) // 2)
    assert note.get_attribute("data-max-masked-grad") == "0"
    assert note.get_attribute("data-python-max-masked-grad") == "0"
    assert "exactly zero" in note.text
    js(browser, "explorer.setView('dS'); explorer.setCell(2, 9)")
    why = browser.find_element("id", "why")
    assert "This cell is masked" in why.text
    assert why.find_element("css selector", '.num[data-key="dS"]').get_attribute(
        "data-value") == "0"


def test_own_module_page(browser, tmp_path):
    mg.manual_seed(1)
    model = Tagger()
    ids = np.array([1, 4, 2, 9, 3, 3, 7, 0])
    path = tmp_path / "tagger.html"
    ex = viz.explore(model, ids)
    ex.save(path)
    errors, _ = open_page(browser, path)
    assert errors == []
    tr = traced(model, ids, "mean")
    got = page_values(browser, "dS", 0, 0, 1).reshape(8, 8)
    np.testing.assert_allclose(got, tr.grads["masked scores"][0][0, 1], rtol=1e-4,
                               atol=1e-10)
    assert "mix" in browser.find_element("id", "head-title").text


def test_encoder_decoder_page(browser, tmp_path):
    """Cross-attention: a T x S head view with target rows and source columns; the page's
    numbers equal Python's (which test_explore checks against viz.trace)."""
    from minigrad.models.seq2seq import Seq2Seq, Seq2SeqConfig

    mg.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(vocab_size=16, block_size=16, n_layer=2, n_head=2,
                                  n_embd=16))
    src, tgt_in = np.array([5, 6, 7, 8, 9, 10]), np.array([1, 10, 9, 8, 7, 6, 5])
    ex = viz.explore(model, (src, tgt_in), labels=("abcdef", "^fedcba"),
                     targets=np.array([10, 9, 8, 7, 6, 5, 2]), target_labels="fedcba$")
    path = tmp_path / "seq2seq.html"
    ex.save(path)
    errors, _ = open_page(browser, path)
    assert errors == []
    browser.find_element("css selector", '.thumb[data-block="3"][data-head="1"]').click()
    title = browser.find_element("id", "head-title").text
    assert "decoder.layers.0.cross_attn" in title and "cross-attention" in title
    assert "(target)" in browser.find_element("id", "view-caption").text
    js(browser, "explorer.setLoss(4); explorer.setCell(3, 5)")
    why = browser.find_element("id", "why").text
    assert "query t = 3 'd', key s = 5 'f'" in why
    assert "position 3 'd' predicting 'c'" in browser.find_element("id", "loss-info").text
    ref = backward_from_d_out(ex.blocks[3], ex.d_out[4][3])
    for name in ("dP", "dS", "dq", "dk", "dv"):
        got = page_values(browser, name, 4, 3, 1).reshape(ref[name][1].shape)
        np.testing.assert_allclose(got, ref[name][1], rtol=1e-9, atol=1e-12)
    P = page_values(browser, "P", 4, 3, 1).reshape(7, 6)
    np.testing.assert_array_equal(P, ex.blocks[3]["probs"][1])


def test_two_explorers_in_one_notebook_page_do_not_clash(browser, tmp_path):
    model, ids = tiny_gpt()
    first = viz.explore(model, ids, labels=TEXT)
    second = viz.explore(model, ids[:6], labels=TEXT[:6])
    path = tmp_path / "notebook.html"
    path.write_text("<!DOCTYPE html><html><body>" + first._repr_html_() +
                    second._repr_html_() + "</body></html>", encoding="utf-8")
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(path.as_uri())
    frames = browser.find_elements("tag name", "iframe")
    assert len(frames) == 2
    picks = []
    for frame in frames:
        browser.switch_to.frame(frame)
        WebDriverWait(browser, 20).until(
            lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        picks.append(len(browser.find_elements("css selector", "#loss-picker button")))
        browser.switch_to.default_content()
    assert picks == [len(TEXT), 6]


@pytest.mark.slow
def test_default_run_opens_cleanly(browser, tmp_path, capsys):
    """`minigrad explore` on a checkpoint of the default GPT, 64 characters of Shakespeare."""
    mg.manual_seed(0)
    text = load_text("shakespeare")
    vocab = sorted(set(text))
    model = GPT(GPTConfig(vocab_size=len(vocab)))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    save_checkpoint(tmp_path / "run" / "ckpt", model, opt,
                    {"model": {"vocab_size": len(vocab), "block_size": 64, "n_layer": 4,
                               "n_head": 4, "n_embd": 128}, "vocab": vocab, "iter": 0})
    out = tmp_path / "page.html"
    assert main(["explore", "--ckpt", str(tmp_path / "run"), "--text", text[:64],
                 "--out", str(out)]) == 0
    print(capsys.readouterr().out)
    errors, urls = open_page(browser, out, timeout=60)
    assert errors == [] and all(u.startswith(("file:", "data:", "blob:")) for u in urls)
    assert len(browser.find_elements("css selector", "#model-view .thumb")) == 16
    browser.find_element("css selector", '#loss-picker button[data-choice="40"]').click()
    browser.find_element("css selector", '#view-tabs button[data-view="dP"]').click()
    assert "position 39" in browser.find_element("id", "loss-info").text
    assert out.stat().st_size <= 3_000_000
    # the gradients are stored as float16 here: the page's numbers equal Python's to about
    # 3 significant digits of each map's largest value
    ids = np.array([vocab.index(ch) for ch in text[:64]])
    tr = traced(model, ids, 39)
    for b, h in ((0, 0), (3, 2)):
        for name, label in TRACE_NAMES.items():
            ref = tr.grads[label][b][0, h]
            got = page_values(browser, name, 40, b, h).reshape(ref.shape)
            np.testing.assert_allclose(got, ref, rtol=0, atol=2e-3 * np.abs(ref).max())
