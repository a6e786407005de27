"""The process exit codes: one enum, the README's table (cron and scripts rely on them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FIRING = 1  # `snapshot --check`: an unmuted alert fires (internal errors also exit 1)
    USAGE = 2  # bad flags, bad config
    SOURCE = 3  # sandbox.db / events.db / the ledger cannot be read
    NOT_CONVERGED = 4  # an action failed, timed out, or could not be audited
    DECLINED = 5  # the operator answered no at the confirmation
    INTERRUPTED = 130  # SIGINT (SIGTERM exits 143 = 128 + 15)

    # An unexpected error shares 1 with FIRING: the README documents both.
    INTERNAL = 1
