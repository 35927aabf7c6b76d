"""Work folders that killed runs leave, and signals that stop a command.

None of these reads a database, so they run on either engine.
"""

import os
import signal
import time

import pytest

from backup_restore.interrupts import Interrupted, raise_on_signals
from backup_restore.workdirs import LOCK_NAME, locked_temporary_directory


def test_abandoned_work_folders_removed(tmp_path):
    killed = tmp_path / "cpr-restore-killed"
    killed.mkdir()
    (killed / LOCK_NAME).touch()
    (killed / "database.dump").write_bytes(b"a full dump")
    old_unlocked = tmp_path / "cpr-restore-old"
    old_unlocked.mkdir()
    two_days_ago = time.time() - 2 * 24 * 60 * 60
    os.utime(old_unlocked, (two_days_ago, two_days_ago))
    new_unlocked = tmp_path / "cpr-restore-starting"
    new_unlocked.mkdir()
    other_prefix = tmp_path / "cpr-verify-killed"
    other_prefix.mkdir()
    (other_prefix / LOCK_NAME).touch()

    with locked_temporary_directory("cpr-restore-", tmp_path) as running:
        with locked_temporary_directory("cpr-restore-", tmp_path) as second:
            assert running.is_dir()
            assert second.is_dir()
        assert not second.exists()
        assert running.is_dir()

    assert not killed.exists()
    assert not old_unlocked.exists()
    assert new_unlocked.is_dir()
    assert other_prefix.is_dir()
    assert not running.exists()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_signal_raises_interrupted(stop):
    previous = signal.getsignal(stop)

    with pytest.raises(Interrupted) as raised, raise_on_signals():
        os.kill(os.getpid(), stop)
        # The handler runs between bytecodes; this gives it the chance.
        time.sleep(5)

    assert raised.value.signal_number == stop
    assert raised.value.exit_status == 128 + stop
    assert signal.getsignal(stop) == previous
