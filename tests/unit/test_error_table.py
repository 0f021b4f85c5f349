"""protocol/errors.py, the SPEC §16 table and the REST statuses say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

from protocol.errors import ErrorCode
from server.transport.rest import STATUS

SPEC = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text()


def spec_rows() -> dict[str, tuple[bool, int]]:
    section = SPEC[SPEC.index("## 16. Errors") : SPEC.index("## 17. Limits")]
    rows = re.findall(r"^\| `([a-z_]+)` \| (yes|no) \| (\d{3}) \|", section, re.MULTILINE)
    return {code: (retryable == "yes", int(http)) for code, retryable, http in rows}


def test_every_error_code_is_documented_with_its_retryable_flag_and_http_status() -> None:
    documented = spec_rows()
    assert set(documented) == {code.code for code in ErrorCode}
    for code in ErrorCode:
        assert documented[code.code] == (code.retryable, STATUS[code]), code
