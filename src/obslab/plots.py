"""Plot helpers shared by the chapters (matplotlib axes in, nothing returned)."""

from __future__ import annotations

from collections.abc import Sequence

from obslab.truth import Incident

__all__ = ["shade_incidents"]


def shade_incidents(ax, incidents: Sequence[Incident], t0_ms: int, unit_ms: int = 60_000,
                    label: bool = True) -> None:
    """Shade each incident's fault period (and lighter, its cooldown) on a timeline axis whose
    x is ``(t - t0_ms) / unit_ms``; the fault id is written at the top."""
    for inc in incidents:
        a, b, c = ((x - t0_ms) / unit_ms for x in (inc.start_ms, inc.end_ms, inc.cooldown_end_ms))
        ax.axvspan(a, b, color="tab:red", alpha=0.15, lw=0)
        ax.axvspan(b, c, color="tab:orange", alpha=0.08, lw=0)
        if label:
            ax.text(a, 1.0, inc.fault_id, transform=ax.get_xaxis_transform(), fontsize=7,
                    rotation=90, va="top", ha="right", color="tab:red")
