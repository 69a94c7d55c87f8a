"""Stop signals: SIGTERM and SIGINT raise `Interrupted` inside the block (SIGTERM's default would
kill the process on the spot), can be held back while files are written, and the handlers that
were there before come back."""

from __future__ import annotations

import os
import pickle
import signal
import time

import pytest

from context_research.cli.interruption import Interrupted, describe_stop, stop_deferred, stop_signals_raise


def wait_for_signal() -> None:
    """Let Python run the pending signal handler."""
    for _ in range(100):
        time.sleep(0.01)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_raises_interrupted_and_handlers_come_back(sig, code):
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as caught:
        with stop_signals_raise():
            os.kill(os.getpid(), sig)
            wait_for_signal()
    assert str(caught.value) == f"interrupted by {sig.name}"
    assert caught.value.exit_code == code
    assert isinstance(caught.value, KeyboardInterrupt)  # every `except KeyboardInterrupt` sees it
    assert signal.getsignal(sig) is before


def test_deferred_signal_is_raised_when_the_block_ends():
    finished = []
    with pytest.raises(Interrupted, match="SIGTERM"):
        with stop_signals_raise():
            with stop_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                wait_for_signal()
                finished.append("files written")
    assert finished == ["files written"]


def test_interrupted_survives_pickling_across_processes():
    # joblib workers send their exception back to the launching process
    again = pickle.loads(pickle.dumps(Interrupted("SIGTERM")))
    assert again.signal_name == "SIGTERM" and again.exit_code == 143


def test_manifest_error_names_what_stopped_the_job():
    assert describe_stop(Interrupted("SIGTERM")) == "interrupted by SIGTERM"
    assert describe_stop(KeyboardInterrupt()) == "interrupted by SIGINT"
    assert describe_stop(SystemExit(-1)) == "interrupted: the process exited (SystemExit: -1)"
