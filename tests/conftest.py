"""Shared fixtures. Feature-specific fixtures live in tests/fixtures/ and the test modules."""

from __future__ import annotations

import pytest

from tests.fixtures.podman import in_ci


@pytest.fixture(autouse=True)
def _private_ledger(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes the operator's real ledger: the default ledger is a per-test temp file
    (a test that needs the XDG default unsets $OPCOCKPIT_LEDGER itself)."""
    monkeypatch.setenv("OPCOCKPIT_LEDGER", str(tmp_path_factory.mktemp("ledger") / "ledger.db"))


_podman_ran: list[str] = []
_podman_skipped: list[str] = []
_podman_deselected: list[str] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _podman_deselected.extend(item.nodeid for item in items if item.get_closest_marker("podman"))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "podman" not in report.keywords:
        return
    if report.skipped:
        # Only the engine being unavailable counts: a contract case that does not apply to
        # podman ("provider does not paginate") is a legitimate skip on any machine.
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if "podman engine" in reason:
            _podman_skipped.append(report.nodeid)
    elif report.when == "call":
        _podman_ran.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI the real-engine tests are a requirement: a skip (however it came about, a marker
    expression, a changed fixture) or none run at all when some were collected fails the run."""
    if not in_ci() or exitstatus not in (0,):
        return
    collected = any(item.get_closest_marker("podman") for item in session.items)
    if _podman_skipped or _podman_deselected or (collected and not _podman_ran):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = (
            f"podman tests did not run in CI (skipped: {len(_podman_skipped)}, "
            f"deselected: {len(_podman_deselected)}, ran: {len(_podman_ran)})"
        )
        if reporter is not None:
            reporter.write_line(f"ERROR: {msg}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
