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


def interval_plot(ax, summary, dataset: str, metric: str = "AUROC", family: str = "all",
                  chance: float | None = None) -> None:
    """Each method's ``metric`` with its 95 % interval (a horizontal bar) on one axis; methods
    on the y axis in table order, feature sets in colour. ``summary``: the sweep's long table."""
    from obslab.sweep import methods

    rows = summary[(summary["dataset"] == dataset) & (summary["family"] == family)
                   & (summary["metric"] == metric)].set_index(["features", "detector"])
    order = [m for m in methods() if m in rows.index][::-1]
    colour = {"embedding": "tab:blue", "raw features": "tab:orange", "none": "tab:grey"}
    for y, key in enumerate(order):
        r = rows.loc[key]
        ax.plot([r["low"], r["high"]], [y, y], color=colour.get(key[0], "k"), lw=2)
        ax.plot(r["estimate"], y, "o", color=colour.get(key[0], "k"), ms=4)
    ax.set_yticks(range(len(order)), [f"{d} ({f})" for f, d in order], fontsize=7)
    if chance is not None:
        ax.axvline(chance, color="grey", ls=":", lw=1)
    ax.set_xlabel(metric)
    ax.set_title(dataset, fontsize=9)
