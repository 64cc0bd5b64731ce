"""Deferred Ctrl-C (neuralframe.ctrlc): recorded inside the block, raised at a checkpoint or at the end,
untouched outside; and the command line answers a Ctrl-C with "interrupted" and exit code 130."""

from __future__ import annotations

import os
import signal
import time

import pytest

from neuralframe import ctrlc


@pytest.fixture(autouse=True)
def python_sigint():
    """Python's own Ctrl-C handler, whatever this process inherited (a background job ignores SIGINT)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs on the main thread's next bytecodes


def test_inside_the_block_ctrl_c_waits_for_a_checkpoint():
    with pytest.raises(KeyboardInterrupt):
        with ctrlc.deferred():
            _ctrl_c()
            _ctrl_c()
            assert ctrlc.pending() == 2  # recorded, not raised
            with pytest.raises(KeyboardInterrupt):
                ctrlc.checkpoint()  # one press, one KeyboardInterrupt
            assert ctrlc.pending() == 1
        # the press not taken at a checkpoint raises once the block is done
    assert ctrlc.pending() == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_block_ctrl_c_raises_at_once_and_checkpoints_do_nothing():
    ctrlc.checkpoint()
    with pytest.raises(KeyboardInterrupt):
        _ctrl_c()


def test_an_error_in_the_block_wins_over_a_pending_ctrl_c():
    with pytest.raises(ValueError):
        with ctrlc.deferred():
            _ctrl_c()
            raise ValueError("the job's own error")
    assert ctrlc.pending() == 0 and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_inside_a_command_is_interrupted_and_130(monkeypatch, tmp_path, capsys):
    import neuralframe.apps.render as jobs
    from neuralframe.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "render_path", interrupted)
    scene = os.path.join(os.path.dirname(__file__), "..", "assets", "scenes", "motorcycle.ply")
    assert main(["render", scene, "-o", str(tmp_path / "x.mp4"), "--frames", "2"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_sigterm_inside_graceful_sigterm_is_a_ctrl_c_that_says_so():
    """SIGTERM raises `Terminated` (a KeyboardInterrupt: everything that stops gracefully on Ctrl-C does on
    SIGTERM too), is deferred like a Ctrl-C, and its default action is back after the block."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with ctrlc.graceful_sigterm():
            with pytest.raises(ctrlc.Terminated):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
            with pytest.raises(ctrlc.Terminated):
                with ctrlc.deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.05)
                    _ctrl_c()
                    assert ctrlc.pending() == 2  # recorded, in order
                    with pytest.raises(ctrlc.Terminated):
                        ctrlc.checkpoint()
                    with pytest.raises(KeyboardInterrupt) as plain:
                        ctrlc.checkpoint()
                    assert not isinstance(plain.value, ctrlc.Terminated)
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(0.05)
                # the SIGTERM not taken at a checkpoint raises once the block is done
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)
