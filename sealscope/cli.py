"""The ``sealscope`` command: the composition root (settings -> components -> run)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

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
    up.add_argument("--mqtt-port", type=int, help="default 1883, or a free one if taken")
    up.add_argument("--api-port", type=int, help="default 8000, or a free one if taken")

    sub.add_parser("ingest", help="MQTT -> store, against the configured broker and store")
    sub.add_parser("api", help="the HTTP API and web page")

    sim = sub.add_parser("sim", help="publish a simulated fleet to the configured broker")
    sim.add_argument("--devices", type=int, default=20)
    sim.add_argument("--interval", type=float, default=2.0, help="wall s between uplinks")
    sim.add_argument("--uplinks", type=int, help="rounds to send (default: until Ctrl-C)")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument(
        "--no-register", action="store_true", help="do not write the fleet into the registry"
    )

    bench = sub.add_parser("bench", help="measure throughput against real services")
    bench_sub = bench.add_subparsers(dest="bench", required=True, metavar="WHAT")
    bi = bench_sub.add_parser("ingest", help="ingest rate vs Mosquitto and InfluxDB ceilings")
    bi.add_argument("--messages", type=int, default=20_000)
    bi.add_argument("--samples", type=int, default=12, help="samples per message")
    bi.add_argument("--devices", type=int, default=1000)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, data_dir=args.data_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # paho and uvicorn are chatty at INFO; our own progress lines are what matter
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        settings = _settings(args)
        from sealscope import runtime

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
        elif args.command == "api":
            asyncio.run(runtime.run_api(settings))
        elif args.command == "sim":
            asyncio.run(
                runtime.run_sim(
                    settings,
                    devices=args.devices,
                    interval_s=args.interval,
                    uplinks=args.uplinks,
                    seed=args.seed,
                    register=not args.no_register,
                )
            )
        elif args.command == "bench":
            from sealscope.bench import run_bench_ingest

            return asyncio.run(
                run_bench_ingest(messages=args.messages, samples=args.samples, devices=args.devices)
            )
    except ConfigError as exc:
        print(f"sealscope: configuration error: {exc}", file=sys.stderr)
        return 2
    except SealscopeError as exc:
        print(f"sealscope: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
