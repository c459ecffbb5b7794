"""The loss plot of a training run: one child process that draws on request and answers."""

import io
import json
import os

from minigrad.models.plot import serve
from minigrad.models.runlog import LossPlotter, write_log

RECORDS = [{"iter": 0, "train_loss": 4.2, "val_loss": 4.3, "lr": 1e-3, "elapsed": 1.0},
           {"iter": 10, "train_loss": 3.1, "val_loss": 3.4, "lr": 1e-3, "elapsed": 2.0}]


def _log(tmp_path):
    path = tmp_path / "log.jsonl"
    write_log(str(path), RECORDS)
    return str(path)


def test_serve_answers_each_request(tmp_path):
    log, png = _log(tmp_path), tmp_path / "loss.png"
    requests = io.StringIO(json.dumps([log, str(png)]) + "\n"
                           + json.dumps([log, str(tmp_path / "missing" / "loss.png")]) + "\n")
    replies = io.StringIO()
    serve(requests, replies)
    ok, error = replies.getvalue().splitlines()
    assert ok == "ok"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert error.startswith("FileNotFoundError") and "missing" in error
    assert sorted(os.listdir(tmp_path)) == ["log.jsonl", "loss.png"]  # no temporary file


def test_plotter_draws_before_returning_and_closes(tmp_path):
    plotter = LossPlotter()
    child = plotter.child
    try:
        assert os.getsid(child.pid) != os.getsid(0)  # Ctrl-C in a terminal stops only the run
        log = _log(tmp_path)
        for name in ("a.png", "b.png"):  # the same child draws every plot
            plotter.update(log, str(tmp_path / name))
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        assert plotter.child is child
    finally:
        plotter.close()
    assert plotter.child is None and child.returncode == 0


def test_plotter_failure_is_reported_once_and_the_run_goes_on(tmp_path, capfd):
    plotter = LossPlotter()
    child = plotter.child
    missing = str(tmp_path / "missing" / "loss.png")
    plotter.update(_log(tmp_path), missing)
    assert plotter.child is None and child.returncode == 0
    err = capfd.readouterr().err
    assert f"the loss plot {missing} was not drawn (FileNotFoundError" in err
    plotter.update(_log(tmp_path), str(tmp_path / "loss.png"))  # no child: nothing drawn
    assert not (tmp_path / "loss.png").exists()
    assert capfd.readouterr().err == ""


def test_plotter_survives_a_dead_child(tmp_path, capfd):
    plotter = LossPlotter()
    plotter.child.kill()
    plotter.child.wait()
    plotter.update(_log(tmp_path), str(tmp_path / "loss.png"))
    assert plotter.child is None
    assert "the plotting process exited" in capfd.readouterr().err
