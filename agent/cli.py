"""The ``wpfleet`` command line: parse, call one library function per command, render.

``main(argv)`` returns the exit code (0 all good, 1 a site failed, 2 bad usage or config);
only ``entry_point`` calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import __version__, config, demo, fleet, logs, render
from agent.clock import Clock, SystemClock
from agent.config import ConfigError, FleetConfig
from agent.state import State
from inventory.models import SiteInventory

log = logging.getLogger("wpfleet")
OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line usage: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wpfleet", description="WordPress fleet maintenance agent")
    parser.add_argument("--config", help="sites.toml (default: $WPFLEET_CONFIG, else ./sites.toml)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs on stderr")
    parser.add_argument("--version", action="version", version=f"wpfleet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("check-config", help="validate the config file")
    inventory = commands.add_parser("inventory", help="what runs on every site")
    inventory.add_argument("--site", action="append", metavar="NAME")
    inventory.add_argument("--json", action="store_true")
    demo_cmd = commands.add_parser("demo", help="build a demo fleet on this machine and inventory it")
    demo_cmd.add_argument("--dir", type=Path, help="where to build it (default ./wpfleet-demo)")
    demo_cmd.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None, *, clock: Clock | None = None) -> int:
    """Run one command; returns its exit code."""
    args_list = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(args_list)
    except UsageError as exc:
        print(f"wpfleet: {exc}", file=sys.stderr)
        return USAGE
    logs.setup(args.verbose)
    handler = COMMANDS[args.command]
    try:
        return handler(args, clock or SystemClock())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return USAGE
    except UsageError as exc:
        print(f"wpfleet: {exc}", file=sys.stderr)
        return USAGE


def load_config(args: argparse.Namespace) -> FleetConfig:
    return config.load(config.locate(args.config))


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def cmd_check_config(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    problems = config.missing_secrets(loaded)
    if problems:
        raise ConfigError(problems)
    print(f"{loaded.source}: ok, {len(loaded.sites)} site(s)", file=sys.stderr)
    return OK


def run_inventory(loaded: FleetConfig, names: list[str] | None, clock: Clock) -> list[SiteInventory]:
    """Inventory the selected sites and store each result as a snapshot."""
    sites = loaded.select(names)
    state = State(loaded.agent.state_dir)
    progress = fleet.Progress(total=len(sites))

    def done(site: config.SiteConfig, result: SiteInventory) -> None:
        state.save_snapshot(site.name, clock.now(), result.ok, result.to_public())
        progress.step(site.name, "ok" if result.ok else f"FAILED: {result.error}")

    try:
        return fleet.inventory_fleet(loaded, sites, on_done=done)
    finally:
        state.close()


def cmd_inventory(args: argparse.Namespace, clock: Clock) -> int:
    loaded = load_config(args)
    results = run_inventory(loaded, args.site, clock)
    if args.json:
        emit_json([r.to_public() for r in results])
    else:
        sys.stdout.write(render.inventory_table(results))
    return OK if all(r.ok for r in results) else FAILED


def cmd_demo(args: argparse.Namespace, clock: Clock) -> int:
    folder = args.dir or demo.default_folder()
    folder.mkdir(parents=True, exist_ok=True)
    path = demo.build_fleet(folder)
    log.info("demo fleet built: %s (try: wpfleet --config %s inventory)", path, path)
    results = run_inventory(config.load(path), None, clock)
    if args.json:
        emit_json([r.to_public() for r in results])
    else:
        sys.stdout.write(render.inventory_table(results))
    return OK if all(r.ok for r in results) else FAILED


COMMANDS: dict[str, Callable[[argparse.Namespace, Clock], int]] = {
    "check-config": cmd_check_config,
    "inventory": cmd_inventory,
    "demo": cmd_demo,
}


def entry_point() -> None:
    sys.exit(main())
