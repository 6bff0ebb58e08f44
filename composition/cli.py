"""The ``sealscope`` command: the composition root (settings -> components -> run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sealscope.config import Settings, load_settings
from sealscope.errors import ConfigError, SealscopeError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sealscope",
        description="Telemetry and seal health for NB-IoT smart pumps and valves.",
    )
    p.add_argument("--config", type=Path, help="TOML settings file (or SEALSCOPE_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="where SQLite files and the spool live")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="everything in one process on the embedded default")
    up.add_argument(
        "--simulate",
        type=int,
        default=0,
        metavar="N",
        nargs="?",
        const=20,
        help="also run a simulated fleet of N devices (default 20)",
    )
    up.add_argument(
        "--sim-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="wall seconds between simulated uplink rounds",
    )
    up.add_argument(
        "--broker",
        choices=("auto", "mosquitto", "amqtt"),
        default="auto",
        help="embedded broker: mosquitto if installed (auto), else amqtt",
    )
    up.add_argument(
        "--mqtt-port",
        type=int,
        help="default: the port of the last start, else 1883 (SEALSCOPE_MQTT_PORT), else a "
        "free one, remembered in the data dir",
    )
    up.add_argument(
        "--api-port",
        type=int,
        help="default: the port of the last start, else 8000 (SEALSCOPE_API_PORT), else a "
        "free one, remembered in the data dir",
    )

    sub.add_parser("ingest", help="MQTT -> store, against the configured broker and store")
    sub.add_parser(
        "detect-worker",
        help="detectors of the device partitions it leases, fed from the NATS batch log",
    )
    sub.add_parser("api", help="the HTTP API and web page")
    sub.add_parser(
        "gateway",
        help="NB-IoT gateway: CoAP/SenML uplinks (and platform HTTP push) -> MQTT",
    )
    keys = sub.add_parser("keys", help="issue, rotate or revoke gateway device keys")
    keys.add_argument("action", choices=("issue", "rotate", "revoke"))
    keys.add_argument("device_ids", nargs="+", metavar="DEVICE_ID")
    _accounts_parser(sub)
    _sim_parser(sub)
    _detect_parser(sub)
    _eval_parser(sub)

    bench = sub.add_parser("bench", help="measure throughput against real services")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")
    bi = bench_sub.add_parser("ingest", help="ingest rate vs Mosquitto and InfluxDB ceilings")
    bi.add_argument("--messages", type=int, default=20_000)
    bi.add_argument("--samples", type=int, default=12, help="samples per message")
    bi.add_argument("--devices", type=int, default=1000)
    bi.add_argument("--runs", type=int, default=3, help="rounds of ceilings and drains")
    bi.add_argument("--workers", type=int, default=1, help="sealscope's ingest worker processes")
    bi.add_argument(
        "--latency-seconds", type=float, default=8.0, help="publishing time per latency trial"
    )
    bg = bench_sub.add_parser("gateway", help="CoAP uplinks/s through the gateway into Mosquitto")
    bg.add_argument("--uplinks", type=int, default=20_000)
    bg.add_argument("--devices", type=int, default=2_000)
    bg.add_argument("--samples", type=int, default=12, help="samples per uplink")
    bb = bench_sub.add_parser(
        "broker", help="Mosquitto autosave settings: QoS 1 publish rate and loss on SIGKILL"
    )
    bb.add_argument("--seconds", type=float, default=5.0, help="publishing time per trial")
    bb.add_argument("--rounds", type=int, default=2)
    bs = bench_sub.add_parser("sim", help="simulated device-samples/s and publish rate")
    bs.add_argument("--devices", type=int, default=100_000)
    bs.add_argument("--rounds", type=int, default=3)
    bs.add_argument(
        "--days",
        type=float,
        help="instead: this much event time at field rates, generation + encoding only",
    )
    bs.add_argument("--budget-s", type=float, default=900.0, help="wall-time cap for --days")
    bs.add_argument("--workers", type=int, default=1, help="processes for --days")
    bs.add_argument(
        "--engine",
        choices=("compiled", "numpy"),
        default="compiled",
        help="the fleet's physics for --days: compiled kernel or the numpy reference",
    )
    bp = bench_sub.add_parser(
        "provisioning", help="API upload, background dynsec apply, devices publishing"
    )
    bp.add_argument("--devices", type=int, default=10_000)
    bp.add_argument("--chunk", type=int, default=25, help="dynsec commands per message")
    bp.add_argument("--workers", type=int, default=16, help="device connections at a time")
    bf = bench_sub.add_parser(
        "fault",
        help="ingest, detector workers, broker, NATS and store under load, killed in turn; "
        "reconciles every sample and alert",
    )
    bf.add_argument("--devices", type=int, default=300)
    bf.add_argument("--rounds", type=int, default=24, help="daily uplinks per device")
    bf.add_argument("--rate", type=float, default=200.0, help="messages/s between bursts")
    bf.add_argument("--ingest", type=int, default=3, help="ingest processes")
    bf.add_argument("--workers", type=int, default=2, help="detector workers")
    bf.add_argument("--partitions", type=int, default=8)
    bf.add_argument("--reorder", type=float, default=20.0, help="detector reorder window, seconds")
    bd = bench_sub.add_parser("delivery", help="alert changes/s to a webhook, p50/p99 latency")
    bd.add_argument("--changes", type=int, default=5000, help="queued changes for the rate")
    bd.add_argument("--rate", type=float, default=None, help="changes/s for the latency run")
    bd.add_argument("--seconds", type=float, default=10.0, help="latency run length")
    return p


def _accounts_parser(sub: Any) -> None:
    acc = sub.add_parser("accounts", help="organisations, people and API keys (local state)")
    acc_sub = acc.add_subparsers(dest="accounts", required=True, metavar="ACTION")
    ck = acc_sub.add_parser("create-key", help="print a new API key once (stored hashed)")
    who = ck.add_mutually_exclusive_group(required=True)
    who.add_argument("--admin", action="store_true", help="a key of the platform admin")
    who.add_argument("--org", type=int, metavar="ORG_ID", help="a key of this organisation")
    ck.add_argument("--name", default="cli key", help="what the key is for")
    ck.add_argument("--expires-days", type=int, metavar="DAYS", help="default: never")
    co = acc_sub.add_parser("create-org", help="add an organisation, print its id")
    co.add_argument("name")
    co.add_argument(
        "--kind", required=True, choices=("operator", "manufacturer", "monitoring_point", "admin")
    )
    co.add_argument("--manufacturer-code", help="manufacturers: their devices' manufacturer")
    cu = acc_sub.add_parser("create-user", help="add a person; the password is read from stdin")
    cu.add_argument("org_id", type=int)
    cu.add_argument("username")
    acc_sub.add_parser("list", help="organisations, their people and keys (never secrets)")


def _run_accounts(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from composition.admin import create_admin_key, open_accounts
    from sealscope.accounts import Authenticator
    from sealscope.accounts.passwords import hash_password

    if args.accounts == "create-key" and args.admin:
        print(create_admin_key(settings, name=args.name))
        return 0
    store = open_accounts(settings)
    try:
        if args.accounts == "create-key":
            expires = time.time() + args.expires_days * 86_400 if args.expires_days else None
            key, _ = Authenticator(store).create_key(args.org, name=args.name, expires_at=expires)
            print(key)
        elif args.accounts == "create-org":
            org = store.create_org(
                name=args.name, kind=args.kind, manufacturer_code=args.manufacturer_code
            )
            print(org.id)
        elif args.accounts == "create-user":
            password = sys.stdin.readline().rstrip("\n")
            try:
                password_hash = hash_password(password)
            except ValueError as exc:
                raise ConfigError("password", str(exc)) from exc
            print(
                store.create_user(
                    org_id=args.org_id, username=args.username, password_hash=password_hash
                ).id
            )
        else:
            for org in store.list_orgs():
                print(f"{org.id}\t{org.kind}\t{org.name}")
                for user in store.list_users(org.id):
                    print(f"\tuser {user.username}")
                for api_key in store.list_keys(org.id):
                    state = "revoked" if api_key.revoked_at else "active"
                    print(f"\tkey {api_key.key_id} {api_key.name!r} {state}")
    finally:
        store.close()
    return 0


def _sim_parser(sub: Any) -> None:
    sim = sub.add_parser("sim", help="publish a simulated fleet to the configured broker")
    sim.add_argument("--devices", type=int, default=20)
    sim.add_argument(
        "--profile",
        choices=("demo", "field"),
        default="demo",
        help="demo: minute samples, a fifth of the valves degrading within hours; field: "
        "5-min samples, hourly uplinks, Weibull wear, bad batches, sensor faults, NB-IoT radio",
    )
    pace = sim.add_mutually_exclusive_group()
    pace.add_argument("--interval", type=float, default=2.0, help="wall s between uplinks")
    pace.add_argument(
        "--speed",
        type=float,
        help="simulated s per wall s (e.g. 86400: a day a second), starting at the "
        "fleet's fixed start time instead of live",
    )
    sim.add_argument("--uplinks", type=int, help="rounds to send (default: until Ctrl-C)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--transport",
        choices=("mqtt", "mqtt-device", "coap"),
        default="mqtt",
        help="mqtt: one shared connection; mqtt-device: each device its own MQTT identity; "
        "coap: SenML uplinks through `sealscope gateway`",
    )
    sim.add_argument(
        "--connections", type=int, default=64, help="devices awake at once (mqtt-device, coap)"
    )
    sim.add_argument(
        "--downlink", action="store_true", help="devices listen for commands (mqtt-device)"
    )
    sim.add_argument("--coap-host", default="127.0.0.1")
    sim.add_argument("--coap-port", type=int, help="default: the coap_port setting")
    sim.add_argument("--truth-out", type=Path, help="write the ground truth (.json or .csv)")
    sim.add_argument("--progress", action="store_true", help="progress bar on stderr")
    sim.add_argument(
        "--no-register", action="store_true", help="do not write the fleet into the registry"
    )


def _detect_parser(sub: Any) -> None:
    d = sub.add_parser(
        "detect",
        help="run the detectors over recorded readings in a CSV file",
        description="Score every row of a CSV of recorded readings and write it back with "
        "anomaly_score, anomaly_flag and anomaly_cause columns.",
    )
    d.add_argument("input", type=Path, help="CSV with a header row")
    d.add_argument("-o", "--output", type=Path, required=True, help="CSV to write")
    d.add_argument("--time-column", required=True, help="ISO 8601 or Unix epoch s/ms/us/ns")
    d.add_argument(
        "--map",
        dest="columns",
        metavar="SIGNAL=COLUMN[:UNIT],...",
        help="e.g. leak=Leak:mlmin,pin=P1:bar,pout=P2:bar,pos=Position "
        "(signals: leak, pin, pout, dp, cavity, pos, stroke, torque, current, temp, vib, flow, "
        "speed; "
        "units: pressures kpa/pa/bar/mbar/mpa/psi, leak mm3s/mlmin/mls/lh/lmin, "
        "flow m3h/lmin/ls/lh/gpm/m3s)",
    )
    d.add_argument(
        "--features",
        help="comma-separated columns for the multivariate detector, or * for every numeric "
        "column (default: every numeric column not mapped)",
    )
    d.add_argument(
        "--train", metavar="START,STOP", help="training window, in the file's times (ISO or epoch)"
    )
    d.add_argument(
        "--train-rows",
        metavar="FIRST:LAST",
        help="training window as data row numbers, 0-based and inclusive (0:399 or 0,399)",
    )
    d.add_argument(
        "--skip-warmup",
        action="store_true",
        help="leave the detected warm-up at the start out of training and scoring",
    )
    d.add_argument("--warmup-rows", type=int, metavar="N", help="the first N rows are warm-up")
    d.add_argument(
        "--adapt-rows",
        type=int,
        default=1000,
        metavar="N",
        help="time constant, in rows, of the baseline that follows slow normal drifts "
        "(0: a fixed baseline)",
    )
    d.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar on stderr (default: on a terminal for files over 32 MB)",
    )
    d.add_argument(
        "--train-fraction",
        type=float,
        default=0.2,
        help="training window as the first share of the time span (default 0.2)",
    )
    d.add_argument("--delimiter", help="default: sniffed from the header line")
    d.add_argument("--kind", choices=("valve", "pump"), default="valve")
    d.add_argument("--dn", type=int, help="nominal size, mm (for the ISO 5208 limit)")
    d.add_argument("--pn", type=int, help="pressure class, bar")
    d.add_argument("--leakage-class", default="", help="ISO 5208 rate class, e.g. A, B, C, D")
    d.add_argument(
        "--hold-medium",
        choices=("gas", "liquid"),
        default="gas",
        help="what the pressure-hold test's volume holds (default gas)",
    )
    d.add_argument(
        "--hold-volume",
        type=float,
        metavar="LITRES",
        help="the held volume: turns pressure-decay rates into leak rates in mm3/s",
    )
    d.add_argument(
        "--bulk-modulus",
        type=float,
        default=2200.0,
        metavar="MPA",
        help="effective bulk modulus of a held liquid with its enclosure (default 2200, water)",
    )
    d.add_argument(
        "--hold-thermal",
        type=float,
        metavar="KPA_PER_K",
        help="pressure rise per kelvin of a held liquid (default: learned from training holds)",
    )
    d.add_argument(
        "--persist",
        default="3,5",
        metavar="NEEDED,WINDOW",
        help="a multivariate flag needs NEEDED of the last WINDOW rows over threshold",
    )


def _eval_parser(sub: Any) -> None:
    e = sub.add_parser(
        "eval", help="score the detectors on a simulated field fleet with ground truth"
    )
    e.add_argument("--devices", type=int, default=1000)
    e.add_argument("--days", type=float, default=365.0)
    e.add_argument("--seeds", default="0,1,2", help="comma-separated fleet seeds")
    e.add_argument("--sample-interval", type=float, help="seconds (default: the field fleet's)")
    e.add_argument("--risk-every-days", type=float, default=7.0)


def _pair(text: str, what: str, cast: Callable[[str], Any] = str) -> tuple[Any, Any]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(what, f"expected two comma-separated values, got {text!r}")
    try:
        return cast(parts[0]), cast(parts[1])
    except ValueError as exc:
        raise ConfigError(what, f"{text!r}: {exc}") from exc


def _row_range(text: str) -> tuple[int, int]:
    parts = [p.strip() for p in text.replace(":", ",").split(",")]
    try:
        first, last = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(
            "--train-rows", f"expected FIRST:LAST row numbers (e.g. 0:399), got {text!r}"
        ) from None
    return first, last


def _run_detect(args: argparse.Namespace) -> int:
    from analytics.offline import run_detect

    features = None
    if args.features:
        features = [f.strip() for f in args.features.split(",") if f.strip()]
    summary = run_detect(
        input=args.input,
        output=args.output,
        time_column=args.time_column,
        columns=args.columns,
        train=_pair(args.train, "--train") if args.train else None,
        train_rows=_row_range(args.train_rows) if args.train_rows else None,
        skip_warmup=args.skip_warmup,
        warmup_rows=args.warmup_rows,
        adapt_rows=args.adapt_rows,
        progress=args.progress,
        features=features,
        delimiter=args.delimiter,
        kind=args.kind,
        dn=args.dn,
        pn=args.pn,
        leakage_class=args.leakage_class,
        train_fraction=args.train_fraction,
        persist=_pair(args.persist, "--persist", int),
        hold_medium=args.hold_medium,
        hold_volume_l=args.hold_volume,
        bulk_modulus_mpa=args.bulk_modulus,
        hold_thermal_kpa_per_k=args.hold_thermal,
    )
    print(summary.report(), flush=True)
    return 0


def _run_eval(args: argparse.Namespace, settings: Settings) -> int:
    from analytics import default_detectors
    from composition.evaluation import run_eval

    try:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError("--seeds", f"{args.seeds!r} is not a list of integers") from exc
    overrides = {}
    if args.sample_interval:
        overrides["sample_interval_s"] = args.sample_interval
    try:
        report = run_eval(
            devices=args.devices,
            days=args.days,
            seeds=seeds,
            spec_overrides=overrides,
            detectors=lambda: default_detectors(settings.detectors),
            risk_every_days=args.risk_every_days,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        raise ConfigError("eval", str(exc)) from exc
    print(report.summary(), flush=True)
    return 0


def _run_keys(settings: Settings, action: str, device_ids: list[str]) -> int:
    from gateway.keys import SqliteDeviceKeys, load_pepper

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    keys = SqliteDeviceKeys(settings.state_db, pepper=load_pepper(settings.gateway_pepper_path))
    try:
        for device_id in device_ids:
            if action == "issue":
                print(f"{device_id} {keys.issue(device_id)}")
            elif action == "rotate":
                print(f"{device_id} {keys.rotate(device_id)}")
            else:
                keys.revoke(device_id)
                print(f"{device_id} revoked")
    finally:
        keys.close()
    return 0


def _run_bench(args: argparse.Namespace) -> int:
    if args.bench == "gateway":
        from composition.bench.gateway import run_bench_gateway

        return asyncio.run(
            run_bench_gateway(uplinks=args.uplinks, devices=args.devices, samples=args.samples)
        )
    if args.bench == "provisioning":
        from composition.bench.provisioning import run_bench_provisioning

        if args.devices < 2 or args.chunk < 1 or args.workers < 1:
            raise ConfigError("bench provisioning", "--devices >= 2, --chunk and --workers >= 1")
        run_bench_provisioning(
            devices=args.devices, chunk_commands=args.chunk, workers=args.workers
        )
        return 0
    if args.bench == "broker":
        from composition.bench.broker import run_bench_broker

        if args.seconds <= 0 or args.rounds < 1:
            raise ConfigError("bench broker", "--seconds must be > 0 and --rounds >= 1")
        run_bench_broker(seconds=args.seconds, rounds=args.rounds)
        return 0
    if args.bench == "sim":
        from composition.bench.sim import run_bench_sim, run_bench_sim_span

        if args.days is not None:
            if args.devices < args.workers or args.workers < 1 or args.days <= 0:
                raise ConfigError("bench sim", "need --devices >= --workers >= 1, --days > 0")
            if args.budget_s <= 0:
                raise ConfigError("bench sim", "--budget-s must be > 0")
            return run_bench_sim_span(
                devices=args.devices,
                days=args.days,
                budget_s=args.budget_s,
                workers=args.workers,
                engine=args.engine,
            )
        if args.devices < 1 or args.rounds < 1:
            raise ConfigError("bench sim", "--devices and --rounds must be >= 1")
        return asyncio.run(run_bench_sim(devices=args.devices, rounds=args.rounds))
    if args.bench == "fault":
        from composition.bench.fault import run_bench_fault

        try:
            report = asyncio.run(
                run_bench_fault(
                    devices=args.devices,
                    rounds=args.rounds,
                    rate=args.rate,
                    ingest=args.ingest,
                    workers=args.workers,
                    partitions=args.partitions,
                    reorder_s=args.reorder,
                )
            )
        except ValueError as exc:
            raise ConfigError("bench fault", str(exc)) from exc
        return 0 if report.ok else 1
    if args.bench == "delivery":
        from composition.bench.delivery import run_bench_delivery

        if args.changes < 1 or args.seconds <= 0 or (args.rate is not None and args.rate <= 0):
            raise ConfigError("bench delivery", "--changes >= 1, --seconds and --rate > 0")
        return asyncio.run(
            run_bench_delivery(changes=args.changes, rate_per_s=args.rate, seconds=args.seconds)
        )
    from composition.bench.ingest import run_bench_ingest

    return asyncio.run(
        run_bench_ingest(
            messages=args.messages,
            samples=args.samples,
            devices=args.devices,
            runs=args.runs,
            workers=args.workers,
            latency_s=args.latency_seconds,
        )
    )


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, data_dir=args.data_dir)
    if settings.detectors:
        from analytics import default_detectors

        # refused here, before any service starts, with the key at fault
        default_detectors(settings.detectors)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # paho and uvicorn are chatty at INFO; our own progress lines are what matter
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration check
    try:
        settings = _settings(args)
        from composition import runtime

        if args.command == "up":
            asyncio.run(
                runtime.run_up(
                    settings,
                    simulate=args.simulate,
                    sim_interval_s=args.sim_interval,
                    broker_kind=args.broker,
                    mqtt_port=args.mqtt_port,
                    api_port=args.api_port,
                )
            )
        elif args.command == "ingest":
            asyncio.run(runtime.run_ingest(settings))
        elif args.command == "detect-worker":
            if settings.nats_url is None:
                raise ConfigError("nats_url", "detect-worker reads the batch log: set it")
            from composition.detect_worker import run_detect_worker

            asyncio.run(run_detect_worker(settings))
        elif args.command == "api":
            asyncio.run(runtime.run_api(settings))
        elif args.command == "gateway":
            asyncio.run(runtime.run_gateway(settings))
        elif args.command == "accounts":
            return _run_accounts(settings, args)
        elif args.command == "keys":
            return _run_keys(settings, args.action, args.device_ids)
        elif args.command == "sim":
            asyncio.run(
                runtime.run_sim(
                    settings,
                    devices=args.devices,
                    interval_s=args.interval,
                    uplinks=args.uplinks,
                    seed=args.seed,
                    register=not args.no_register,
                    profile=args.profile,
                    transport=args.transport,
                    speed=args.speed,
                    connections=args.connections,
                    downlink=args.downlink,
                    coap_host=args.coap_host,
                    coap_port=args.coap_port or settings.coap_port,
                    truth_out=args.truth_out,
                    progress_bar=args.progress,
                )
            )
        elif args.command == "detect":
            return _run_detect(args)
        elif args.command == "eval":
            return _run_eval(args, settings)
        elif args.command == "bench":
            return _run_bench(args)
    except ConfigError as exc:
        print(f"sealscope: configuration error: {exc}", file=sys.stderr)
        return 2
    except SealscopeError as exc:
        print(f"sealscope: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
