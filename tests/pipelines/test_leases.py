"""Leases: one holder at a time; an expired or dead holder's lease can be taken; renewal and release."""

from __future__ import annotations

import socket
import time

from medops.pipelines import leases
from medops.workspace import Workspace


def test_one_holder_at_a_time_until_released(workspace: Workspace) -> None:
    first = leases.take(workspace.db, "scheduler:ws")
    assert first is not None
    assert leases.take(workspace.db, "scheduler:ws") is None
    assert leases.holder(workspace.db, "scheduler:ws") == first.holder
    assert leases.renew(workspace.db, first)
    leases.release(workspace.db, first)
    assert leases.holder(workspace.db, "scheduler:ws") is None
    assert leases.take(workspace.db, "scheduler:ws") is not None


def test_an_expired_lease_passes_on_and_its_old_holder_learns_it_lost(workspace: Workspace) -> None:
    old = leases.take(workspace.db, "pipeline:p", seconds=0.2, holder="elsewhere:1:a")
    assert old is not None and leases.take(workspace.db, "pipeline:p") is None
    time.sleep(0.3)
    new = leases.take(workspace.db, "pipeline:p")
    assert new is not None and new.holder != old.holder
    assert not leases.renew(workspace.db, old)
    leases.release(workspace.db, old)  # a lost lease's release leaves the new holder's alone
    assert leases.holder(workspace.db, "pipeline:p") == new.holder


def test_a_dead_process_of_this_machine_holds_nothing(workspace: Workspace) -> None:
    dead = f"{socket.gethostname()}:{2**22 + 12345}:x"  # above the kernel's pid range: no such process
    assert leases.take(workspace.db, "pipeline:p", holder=dead) is not None
    assert leases.holder(workspace.db, "pipeline:p") is None
    assert leases.take(workspace.db, "pipeline:p") is not None
    other_host = f"not-{socket.gethostname()}:{2**22 + 12345}:x"  # another machine's process can't be asked
    assert not leases.process_gone(other_host)


def test_a_keeper_renews_until_closed(workspace: Workspace) -> None:
    held = leases.take(workspace.db, "pipeline:k", seconds=0.3)
    assert held is not None
    keeper = leases.Keeper(workspace.db, held, seconds=0.3)
    time.sleep(0.8)  # past two lengths of the lease: only renewals kept it
    assert leases.take(workspace.db, "pipeline:k") is None and not keeper.lost.is_set()
    keeper.close()
    assert leases.holder(workspace.db, "pipeline:k") is None
