"""``obslab lab run ...``: the native lab with an optional fault scenario."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="run the lab natively (no Docker) and record its telemetry")
    sub = lab.add_subparsers(dest="lab_command", metavar="ACTION")
    run = sub.add_parser("run", help="start the lab, drive load and faults, export raw telemetry",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("--duration", default="10m", help="how long the load runs (90s, 10m, 1h)")
    run.add_argument("--out", required=True, type=Path, help="output folder (raw/, run.json, incidents.json)")
    run.add_argument("--rate", type=float, default=None, help="requests/s (default: the Compose file's RATE)")
    run.add_argument("--seed", type=int, default=42)
    group = run.add_mutually_exclusive_group()
    group.add_argument("--scenario", type=Path, help="scenario YAML (appendix-code/scenarios/*.yaml)")
    group.add_argument("--schedule", choices=["random", "none"], default="none",
                       help="random faults from faults.yaml (seeded) or none: the no-fault control")
    run.add_argument("--interval", default="60s", help="random schedule: mean gap between faults")
    run.add_argument("--min-duration", default="15s", help="random schedule: shortest fault")
    run.add_argument("--max-duration", default="45s", help="random schedule: longest fault")
    run.add_argument("--cooldown", default="15s", help="random schedule: cooldown after each fault")
    run.add_argument("--levels", default=None, help="random schedule: comma-separated level names")
    run.add_argument("--faults", default=None, help="random schedule: comma-separated fault ids")
    run.add_argument("--max-concurrency", type=int, default=1, help="random schedule: faults at once")
    run.add_argument("--deploy-every", default="0", help="random schedule: a deploy (restart) every ... (0: none)")
    run.add_argument("--maintenance-every", default="0",
                     help="random schedule: a 30 s maintenance window every ... (0: none)")
    run.add_argument("--day-length", default=None,
                     help="one simulated day of the load's diurnal shape (e.g. 1h; 0: flat; default: the Compose file's)")
    run.add_argument("--no-tracing", action="store_true", help="OTEL_SDK_DISABLED=true for every service")
    run.add_argument("--scrape-interval", default="5s", help="Prometheus scrape interval")
    run.add_argument("--appendix", type=Path, default=None, help="the appendix-code folder to run")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.set_defaults(func=_run)

    drive = sub.add_parser(
        "scenario", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="drive a scenario against a lab started elsewhere (the Compose stack) and write incidents.json")
    group = drive.add_mutually_exclusive_group(required=True)
    group.add_argument("--scenario", type=Path, help="scenario YAML")
    group.add_argument("--schedule", choices=["random", "none"], help="random faults (seeded) or none")
    drive.add_argument("--duration", default=None, help="how long to drive (default: the scenario's length)")
    drive.add_argument("--out", required=True, type=Path, help="folder for incidents.json")
    drive.add_argument("--seed", type=int, default=42)
    drive.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="the lab's Redis (fault flags)")
    drive.add_argument("--prometheus-url", default="http://127.0.0.1:9090",
                       help="the lab's Prometheus, to verify each fault ('' to skip)")
    drive.add_argument("--step", default="5s", help="Prometheus step for verification (its scrape interval)")
    drive.add_argument("--faults-file", type=Path, default=None, help="the fault catalog (appendix-code/faults.yaml)")
    drive.add_argument("--deploy-command", default="docker compose restart {service}",
                       help="command for deploy events ('' to skip them)")
    drive.add_argument("--maintenance-command", default="", help="command for maintenance windows ('' to skip)")
    drive.add_argument("--interval", default="60s")
    drive.add_argument("--min-duration", default="15s")
    drive.add_argument("--max-duration", default="45s")
    drive.add_argument("--cooldown", default="15s")
    drive.add_argument("--max-concurrency", type=int, default=1)
    drive.set_defaults(func=_scenario)
    lab.set_defaults(func=lambda args: (lab.print_help(), 2)[1])


def _run(args) -> int:
    from obslab.lab.compose import ComposeError
    from obslab.lab.processes import LabError
    from obslab.lab.runner import RunConfig, default_appendix, run_lab
    from obslab.lab.scenario import ScenarioError, parse_duration

    try:
        cfg = RunConfig(
            out=args.out,
            duration_s=parse_duration(args.duration),
            rate=args.rate,
            seed=args.seed,
            scenario_file=args.scenario,
            schedule=args.schedule,
            schedule_options={
                "interval_s": parse_duration(args.interval),
                "min_duration_s": parse_duration(args.min_duration),
                "max_duration_s": parse_duration(args.max_duration),
                "cooldown_s": parse_duration(args.cooldown),
                "levels": args.levels.split(",") if args.levels else None,
                "faults": args.faults.split(",") if args.faults else None,
                "max_concurrency": args.max_concurrency,
                "deploy_every_s": parse_duration(args.deploy_every),
                "maintenance_every_s": parse_duration(args.maintenance_every),
            },
            tracing=not args.no_tracing,
            scrape_interval_s=parse_duration(args.scrape_interval),
            appendix=args.appendix or default_appendix(),
            progress=not args.quiet,
            command=["obslab", *sys.argv[1:]],
            extra_env=({"load-generator": {"DAY_LENGTH_S": f"{parse_duration(args.day_length):g}"}}
                       if args.day_length is not None else {}),
        )
        run = run_lab(cfg)
    except (LabError, ScenarioError, ComposeError) as exc:
        print(f"obslab lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("obslab lab: interrupted before the lab was up", file=sys.stderr)
        return 130
    c = run["counts"]
    print(f"{args.out}: {c['requests_sent']} requests, {c['log_lines_total']} log lines, {c['spans']} spans, "
          f"{c['series']} series, {c['incidents']} incidents, {len(run['restarts'])} restarts"
          + (" (interrupted)" if run["interrupted"] else ""))
    for err in run["errors"]:
        print(f"  warning: {err}", file=sys.stderr)
    return 130 if run["interrupted"] else 0


def _scenario(args) -> int:
    from obslab.lab import scenario as sc
    from obslab.lab.driver import drive_external
    from obslab.lab.runner import default_appendix

    try:
        catalog = sc.load_catalog(args.faults_file or default_appendix() / "faults.yaml")
        if args.scenario:
            plan = sc.load_scenario(args.scenario, catalog)
            duration = sc.parse_duration(args.duration) if args.duration else plan.length_s
        else:
            if not args.duration:
                raise sc.ScenarioError("--schedule needs --duration")
            duration = sc.parse_duration(args.duration)
            plan = sc.no_fault_plan(duration) if args.schedule == "none" else sc.random_schedule(
                catalog, args.seed, duration, interval_s=sc.parse_duration(args.interval),
                min_duration_s=sc.parse_duration(args.min_duration),
                max_duration_s=sc.parse_duration(args.max_duration),
                cooldown_s=sc.parse_duration(args.cooldown), max_concurrency=args.max_concurrency)
        result = drive_external(
            args.redis_url, catalog, plan, duration, args.out, prometheus_url=args.prometheus_url or None,
            step_s=sc.parse_duration(args.step), seed=args.seed,
            event_commands={"deploy": args.deploy_command, "maintenance": args.maintenance_command},
            say=lambda text: print(text, file=sys.stderr, flush=True))
    except (sc.ScenarioError, OSError) as exc:
        print(f"obslab lab: error: {exc}", file=sys.stderr)
        return 1
    incs = result["incidents"]
    print(f"{args.out / 'incidents.json'}: {len(incs)} incidents, {sum(1 for i in incs if i.verified)} verified")
    return 130 if result["interrupted"] else 0
