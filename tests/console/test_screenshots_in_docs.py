"""The console doc shows every screenshot `make screenshots` takes, and each one is there."""

import re
from pathlib import Path

from tests.e2e.screenshots import DESKTOP_SHOTS, OUT, PHONE_SHOTS

DOC = Path(__file__).resolve().parents[2] / "project" / "docs" / "console.md"


def test_every_screenshot_the_script_keeps_is_committed_and_shown_in_the_doc():
    kept = {
        f"{name}-{scheme}.png"
        for name, _, schemes in DESKTOP_SHOTS + PHONE_SHOTS
        for scheme in schemes
    }
    shown = set(re.findall(r"\]\(screenshots/([^)]+\.png)\)", DOC.read_text()))
    assert shown == kept
    assert {path.name for path in OUT.glob("*.png")} == kept
