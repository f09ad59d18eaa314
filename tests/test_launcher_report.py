"""The launcher's one line for a run that failed, whichever process noticed the failure first."""

from __future__ import annotations

import signal
import socket

from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from dexgrasp_cli.errors import PeerLost
from dexgrasp_cli.layouts.launcher import _report

REPLICA_PID, LEARNER_PID = 4242, 4343


def failure(rank: int, pid: int, exitcode: int) -> ProcessFailure:
    return ProcessFailure(local_rank=rank, pid=pid, exitcode=exitcode, error_file="")


def test_a_replica_the_learner_did_not_name_is_named_once(capsys):
    # The elastic agent saw replica 2 die and stopped the learner (rank 2) before it noticed.
    _report("disagg", 3, {1: failure(1, REPLICA_PID, -signal.SIGKILL), 2: failure(2, LEARNER_PID, -signal.SIGTERM)})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: sim replica 2 of 2 (rank 1 on host {socket.gethostname()}, pid {REPLICA_PID}) was lost: "
                     "it was killed by SIGKILL; the run stopped"]  # fmt: skip


def test_a_replica_the_learner_named_gets_no_second_line(capsys):
    _report("disagg", 3, {1: failure(1, REPLICA_PID, -signal.SIGKILL), 2: failure(2, LEARNER_PID, PeerLost.exit_code)})
    assert capsys.readouterr().err == ""


def test_a_dead_learner_is_named(capsys):
    _report("disagg", 3, {2: failure(2, LEARNER_PID, -signal.SIGKILL), 0: failure(0, 1, PeerLost.exit_code)})
    assert capsys.readouterr().err.splitlines() == [
        f"error: learner (rank 2 on host {socket.gethostname()}, pid {LEARNER_PID}) was lost: it was killed by SIGKILL; the run stopped"
    ]
