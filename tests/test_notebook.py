"""The notebook in examples/ runs top to bottom and shows the explorer inline."""

import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "examples", "08_explore_attention.ipynb")


@pytest.mark.slow
def test_explore_notebook_runs(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the [test] extra")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the [test] extra")
    shutil.copy(NOTEBOOK, tmp_path)
    nb = nbformat.read(tmp_path / os.path.basename(NOTEBOOK), as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(html) == 1 and html[0].startswith("<iframe srcdoc=")
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "dL/dO equals viz.trace(): True" in text
    assert "step 200: train loss" in text
    assert (tmp_path / "explore.html").stat().st_size > 10_000
