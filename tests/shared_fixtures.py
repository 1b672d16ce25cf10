"""Where the shared fixtures live: ../shared/fixtures beside the repository (never a machine path).

Real telemetry written by other software, with expected counts (its MANIFEST.json). Tests that
read it skip with this reason where the folder is absent.
"""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
MISSING = f"shared fixtures not present at {FIXTURES} (expected beside the repository)"
