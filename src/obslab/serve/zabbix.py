"""Zabbix -> feed records: which item key gives which field, and how to convert it.

Zabbix keeps history per item; export it as JSON rows ``{"host", "key_", "clock", "value"}``
(``item.get`` joined with ``history.get`` on ``itemid``, or a CSV of the same columns turned to
JSON). Rows of one host are put on a grid of ``step`` seconds (the latest value at or before
each grid time wins, as Zabbix items are polled at their own intervals) and each grid time with
all 14 fields becomes one record. Close-wait counts have no built-in item: the mapping uses
UserParameters, e.g. ``UserParameter=tcp.close_wait[*],ss -Htan state close-wait '( sport = :$1 )' | wc -l``.
"""

from __future__ import annotations

from collections import defaultdict

from obslab.serve.prometheus import FeedSummary
from obslab.serve.schemas import METRIC_RANGES, METRICS, iso_ms

__all__ = ["ZABBIX_ITEMS", "records_from_zabbix"]

# item key -> (field, function from the Zabbix value to the field's unit)
ZABBIX_ITEMS: dict[str, tuple[str, object]] = {
    "system.cpu.util[,user]": ("cpu_user_pct", float),
    "system.cpu.util[,system]": ("cpu_sys_pct", float),
    "system.cpu.util[,iowait]": ("cpu_iowait_pct", float),
    "system.cpu.util[,idle]": ("cpu_idle_pct", float),
    "proc.cpu.util[java]": ("java_cpu_pct", float),  # Zabbix agent 2 / agent >= 5.0
    "vm.memory.util": ("mem_used_pct", float),
    "system.swap.size[,pfree]": ("swap_used_pct", lambda v: 100.0 - float(v)),
    "vfs.fs.size[/,pused]": ("disk_usage_pct", float),
    "net.if.in[eth0]": ("net_in_mb_s", lambda v: float(v) / 1e6),  # bytes/s (item preprocessing: change per second)
    "net.if.out[eth0]": ("net_out_mb_s", lambda v: float(v) / 1e6),
    "tcp.close_wait[8080]": ("back_close_wait", lambda v: int(float(v))),  # UserParameter, see above
    "tcp.close_wait[443]": ("front_close_wait", lambda v: int(float(v))),
    "system.cpu.load[all,avg1]": ("load_average", float),
    "system.uptime": ("uptime_days", lambda v: float(v) / 86400),
}
assert sorted(f for f, _ in ZABBIX_ITEMS.values()) == sorted(METRICS)


def records_from_zabbix(rows: list[dict], step: int = 300, status: str = "healthy",
                        items: dict | None = None, summary: FeedSummary | None = None) -> list[dict]:
    """Zabbix history rows -> 16-field records on a ``step``-second grid, sorted by time then host."""
    items = items or ZABBIX_ITEMS
    summary = summary if summary is not None else FeedSummary()
    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        mapped = items.get(row["key_"])
        if mapped is None:
            continue  # other items of the host
        name, convert = mapped
        series[row["host"]][name].append((int(row["clock"]), convert(row["value"])))
    records = []
    for host, by_field in series.items():
        for values in by_field.values():
            values.sort()
        clocks = [c for values in by_field.values() for c, _ in values]
        first, last = (min(clocks) // step + 1) * step, max(clocks) // step * step
        for t in range(first, last + 1, step):
            rec = {"timestamp": iso_ms(t * 1000), "server_name": host, "status": status}
            lacking = []
            for m in METRICS:
                before = [v for c, v in by_field.get(m, []) if c <= t and t - c < 2 * step]
                if not before:
                    lacking.append(m)
                    continue
                lo, hi, kind = METRIC_RANGES[m]
                v = before[-1]
                if not lo <= v <= hi:
                    summary.clamped += 1
                    v = min(max(v, lo), hi)
                rec[m] = int(round(v)) if kind is int else v
            if lacking:
                summary.incomplete += 1
                for m in lacking:
                    summary.missing[m] += 1
                continue
            records.append(rec)
    records.sort(key=lambda r: (r["timestamp"], r["server_name"]))
    summary.records += len(records)
    return records
