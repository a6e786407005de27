"""--refresh / --timeout reject non-finite numbers (nan spun the TUI at 100 % CPU, inf never refreshed)."""

from __future__ import annotations

import pytest

from opcockpit.cli.main import main

EXIT_USAGE = 2


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity"])
@pytest.mark.parametrize("flag", ["--refresh", "demo --refresh", "snapshot --timeout"])
def test_non_finite_seconds_are_a_usage_error(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    *command, option = flag.split()
    assert main([*command, f"{option}={value}"]) == EXIT_USAGE  # `=`: "-inf" is not an option
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "finite" in lines[0]
    assert "Traceback" not in err
