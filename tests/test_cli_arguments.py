"""Argument checks of the `pulse` command line that need no model or data."""

from __future__ import annotations

import pytest

from tasks import cli


@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_search_k_rejected_while_parsing(value, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["search", "storm", "--k", value])
    assert stopped.value.code == 2
    assert f"invalid count '{value}': give a whole number of 1 or more" in capsys.readouterr().err


def test_rollback_needs_a_reason(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["rollback", "sentiment"])
    assert stopped.value.code == 2
    assert "--reason" in capsys.readouterr().err
