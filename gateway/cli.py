"""``integrity-gateway``: serve, seed, reindex-search, watch, rotate-keys,
demo-identity, token, export-schema, export-contracts, ensure-validators."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _settings(**overrides: Any) -> Any:
    from gateway.settings import Settings

    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _logging(settings: Any) -> None:
    from gateway.logs import configure_logging

    configure_logging(settings.gateway_log_level, settings.gateway_log_format)


def _pii_keys_or_exit(settings: Any, command: str) -> bool:
    """Whether the ID numbers' keys are there; a one-line reason on stderr if not."""
    from gateway.pii import Keyring
    from gateway.settings import ConfigurationError

    try:
        Keyring.from_settings(settings)
    except ConfigurationError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return False
    return True


class _StartupFailure(logging.Filter):
    """uvicorn logs a failed start-up as a whole traceback; for the failures a user can
    act on (the embedded store held by another process, a configuration error) the
    reason's one line is the message."""

    _KNOWN = ("gateway.embedded.EmbeddedError: ", "gateway.settings.ConfigurationError: ")

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text.startswith("Traceback"):
            for marker in self._KNOWN:
                if marker in text:
                    record.msg = "serve: " + text.rsplit(marker, 1)[1].strip()
                    record.args = ()
                    break
        return True


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.serving import uvicorn_options
    from gateway.settings import ConfigurationError

    settings = _settings(gateway_host=args.host, gateway_port=args.port)
    try:
        settings.require_trusted_keys()
    except ConfigurationError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return 2
    if not _pii_keys_or_exit(settings, "serve"):
        return 2
    _logging(settings)
    logging.getLogger("uvicorn.error").addFilter(_StartupFailure())
    uvicorn.run(
        create_app(settings, banner=True, freeze=True),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.gateway_log_level.lower(),
        **uvicorn_options(),
    )
    return 0


def _seed(args: argparse.Namespace) -> int:
    from gateway.runtime import open_sources
    from loaders.seed import SeedRefusedError, seed

    settings = _settings()
    _logging(settings)
    if not _pii_keys_or_exit(settings, "seed"):
        return 2

    async def run() -> None:
        async with open_sources(settings, bulk=True) as sources:
            report = await seed(sources, enterprises=args.enterprises, random_seed=args.random_seed)
        total = sum(report.documents.values())
        print(
            f"seeded {report.enterprises} enterprises ({total} documents) "
            f"with random seed {report.random_seed} in {report.seconds:.1f}s"
        )
        for name, count in sorted(report.documents.items()):
            print(f"  {name:42} {count:>8}")

    try:
        asyncio.run(run())
    except SeedRefusedError as exc:
        print(f"seed refused: {exc}", file=sys.stderr)
        return 2
    return 0


def _reindex_search(args: argparse.Namespace) -> int:
    from gateway.runtime import open_sources
    from loaders.indexes import ensure_indexes
    from loaders.search import rebuild_facets

    settings = _settings()
    _logging(settings)

    async def run() -> int:
        async with open_sources(settings, bulk=True) as sources:
            started = time.perf_counter()
            enterprises, facets = await rebuild_facets(sources)
            unindexed = await ensure_indexes(sources)
        if unindexed:
            names = ", ".join(sorted(source.value for source in unindexed))
            print(f"reindex-search: indexes could not be created on {names}", file=sys.stderr)
            return 1
        print(
            f"reindexed {enterprises} enterprises: {facets} facets "
            f"in {time.perf_counter() - started:.1f}s"
        )
        return 0

    return asyncio.run(run())


def _rotate_keys(args: argparse.Namespace) -> int:
    from gateway.runtime import open_sources
    from loaders.rotation import RotationReport, rotate_keys

    settings = _settings()
    _logging(settings)
    if not _pii_keys_or_exit(settings, "rotate-keys"):
        return 2

    def progress(report: RotationReport) -> None:
        print(f"  resealed {report.resealed} so far", flush=True)

    async def run() -> int:
        async with open_sources(settings, bulk=True) as sources:
            kid = sources.pii.current.kid
            started = time.perf_counter()
            report = await rotate_keys(sources, batch=args.batch, progress=progress)
        print(
            f"rotate-keys: {report.resealed} ID numbers sealed with key {kid} "
            f"in {time.perf_counter() - started:.1f}s"
        )
        if report.changed_meanwhile:
            print(f"  {report.changed_meanwhile} changed meanwhile: run it again")
        if report.unreadable:
            shown = ", ".join((report.unreadable_ids or [])[:10])
            print(
                f"rotate-keys: {report.unreadable} sealed with a key not in "
                f"PII_ENCRYPTION_KEYS (first: {shown}); add that key and run it again",
                file=sys.stderr,
            )
            return 1
        return 0

    return asyncio.run(run())


def _demo_identity(args: argparse.Namespace) -> int:
    from gateway.settings import Source
    from loaders.codes import UsccError, validate_uscc
    from loaders.registry import LEGAL_REPRESENTATIVES
    from loaders.seed import DEMO_RANDOM_SEED, generate

    settings = _settings()
    if not settings.gateway_dev_mode:
        print(
            "demo-identity: only in dev mode (GATEWAY_DEV_MODE=true): it prints a synthetic "
            "ID number the seeder made",
            file=sys.stderr,
        )
        return 2
    try:
        uscc = validate_uscc(args.enterprise)
    except UsccError as exc:
        print(f"demo-identity: {exc}", file=sys.stderr)
        return 2
    # Made again from the seed (the same arguments give the same data, and enterprise i
    # is the same whatever their number): no store is opened, nothing is decrypted, and
    # only a number the seeder invented can be printed.
    enterprises = args.enterprises or settings.gateway_seed_enterprises or 1000
    random_seed = DEMO_RANDOM_SEED if args.random_seed is None else args.random_seed
    batch, _ = generate(enterprises, random_seed)
    made = next(
        (doc for doc in batch[(Source.REGISTRY, LEGAL_REPRESENTATIVES)] if doc["_id"] == uscc),
        None,
    )
    if made is None:
        print(
            f"demo-identity: {uscc} is not one of the {enterprises} enterprises seeded with "
            f"random seed {random_seed}",
            file=sys.stderr,
        )
        return 2
    print(f"name      {made['name']}\nidNumber  {made['id_number']}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    import signal

    from gateway.runtime import open_runtime
    from loaders.freshness import create_watcher

    settings = _settings()
    if settings.needs_embedded_mongodb or settings.redis_url is None:
        print(
            "watch: set MONGODB_URL and REDIS_URL; the embedded servers belong to `serve`, "
            "which runs a watcher of its own",
            file=sys.stderr,
        )
        return 2
    _logging(settings)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_runtime(settings) as runtime:
            watcher = create_watcher(runtime.sources, runtime.cache)
            watcher.start()
            try:
                await watcher.wait_open(timeout_s=settings.startup_timeout_ms / 1000)
                print("watching every source for changes; SIGINT or SIGTERM stops", flush=True)
                await stop.wait()
            finally:
                await watcher.stop()
        print("watch: stopped", flush=True)

    asyncio.run(run())
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.devkeys import has_dev_key, mint_role_token
    from loaders.codes import UsccError, validate_uscc

    settings = _settings()
    if settings.gateway_dev_mode and not has_dev_key(settings.dev_keys_dir):
        print(
            f"token: no development key in {settings.dev_keys_dir.resolve()}: start "
            "`integrity-gateway serve` first (it makes one there), or set GATEWAY_DATA_DIR "
            "to the data directory of the gateway you call",
            file=sys.stderr,
        )
        return 2
    try:
        enterprise = validate_uscc(args.enterprise) if args.enterprise is not None else None
        token = mint_role_token(
            settings,
            args.role,
            enterprise=enterprise,
            scopes=args.scope or (),
            platform=args.platform,
            subject=args.subject,
            ttl=args.ttl,
        )
    except (UsccError, ValueError) as exc:
        print(f"token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _duration(value: str) -> dt.timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError("use a whole number with s, m, h or d, e.g. 30m or 1h")
    return dt.timedelta(seconds=int(number) * units[unit])


def _export_contracts(args: argparse.Namespace) -> int:
    import orjson

    from loaders.contracts import CONTRACTS

    target = Path(args.output)
    target.mkdir(parents=True, exist_ok=True)
    for (family, collection), shape in sorted(CONTRACTS.items()):
        published = {
            "$comment": (
                f"integrity-gateway's contract for {family}.{collection} "
                "(MongoDB $jsonSchema; loaders/contracts.py)"
            ),
            **shape,
        }
        (target / f"{family}.{collection}.json").write_bytes(
            orjson.dumps(published, option=orjson.OPT_INDENT_2) + b"\n"
        )
    print(f"export-contracts: {len(CONTRACTS)} contracts written to {target}")
    return 0


def _ensure_validators(args: argparse.Namespace) -> int:
    from pymongo.errors import PyMongoError

    from gateway.runtime import open_sources
    from gateway.settings import Source
    from loaders.contracts import contract

    settings = _settings()

    async def run() -> int:
        failed = 0
        async with open_sources(settings) as sources:
            for source in Source:
                database = sources.db(source)
                for collection in sorted(await database.list_collection_names()):
                    shape = contract(source, collection)
                    if shape is None:
                        continue
                    try:
                        await database.command(
                            {
                                "collMod": collection,
                                "validator": {"$jsonSchema": shape},
                                "validationLevel": "moderate",
                                "validationAction": args.action,
                            }
                        )
                    except PyMongoError as exc:
                        failed += 1
                        print(
                            f"ensure-validators: {source.value}.{collection}: {exc}",
                            file=sys.stderr,
                        )
                        continue
                    print(f"  {source.value}.{collection}: validator installed ({args.action})")
        return 1 if failed else 0

    return asyncio.run(run())


def _export_schema(args: argparse.Namespace) -> int:
    from resolvers.schema import schema

    text = schema.as_str() + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="integrity-gateway",
        description=(
            "GraphQL gateway for enterprise integrity archives. Configuration comes from "
            "environment variables (see README); with no MONGODB_URL / REDIS_URL it starts "
            "embedded servers with data under GATEWAY_DATA_DIR (default ./var)."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="start the gateway (seeds demo data into an empty registry)",
        description="Start the gateway; GraphiQL at http://HOST:PORT/graphql.",
    )
    serve.add_argument("--host", help="bind address (default: GATEWAY_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: GATEWAY_PORT or 8000)")
    serve.set_defaults(handler=_serve)

    seed = commands.add_parser(
        "seed",
        help="fill every source with deterministic synthetic archives",
        description=(
            "Replace the demo data in every source with N synthetic enterprises. The same "
            "arguments always give the same data. Refuses a registry it did not seed."
        ),
    )
    seed.add_argument("--enterprises", type=_positive, required=True, metavar="N")
    seed.add_argument(
        "--random-seed", type=int, default=1, metavar="S", help="default: 1, the demo data set"
    )
    seed.set_defaults(handler=_seed)

    reindex = commands.add_parser(
        "reindex-search",
        help="recompute the search facets' counts and fences (after bulk changes)",
        description=(
            "Recompute every search facet's count and fences from the search collection, "
            "give this version's facets to search documents an earlier version wrote, and "
            "ensure the indexes. Results never depend on the counts and fences; the cost "
            "of a search page does."
        ),
    )
    reindex.set_defaults(handler=_reindex_search)

    watch = commands.add_parser(
        "watch",
        help="follow every source's change stream and evict what changes (one for many replicas)",
        description=(
            "Follow the change stream of every source database and, for each change made "
            "by any system, evict the Redis entries that hold the document and keep search "
            "in step. Resume tokens are kept in MongoDB (integrity_gateway.resume_tokens), "
            "so a restart misses nothing. `serve` runs the same watcher unless "
            "WATCHER_ENABLED=false; run this once for many replicas instead. Needs "
            "MONGODB_URL and REDIS_URL."
        ),
    )
    watch.set_defaults(handler=_watch)

    demo = commands.add_parser(
        "demo-identity",
        help="print a seeded enterprise's representative and ID number (dev mode; demo data)",
        description=(
            "For trying verifyLegalRepresentative with a matching pair: print the name "
            "and the synthetic ID number the seeder made for an enterprise of the demo "
            "data. They are made again from the seed's arguments, not read from the store "
            "(which holds the number sealed), so it works while the gateway runs. Dev "
            "mode only."
        ),
    )
    demo.add_argument("--enterprise", required=True, metavar="USCC")
    demo.add_argument(
        "--enterprises",
        type=_positive,
        metavar="N",
        help="how many were seeded (default: GATEWAY_SEED_ENTERPRISES)",
    )
    demo.add_argument(
        "--random-seed", type=int, metavar="S", help="the seed's random seed (default: 1)"
    )
    demo.set_defaults(handler=_demo_identity)

    rotate = commands.add_parser(
        "rotate-keys",
        help="seal every ID number with the first key of PII_ENCRYPTION_KEYS",
        description=(
            "Re-encrypt, in batches, every legal representative's ID number that is not "
            "sealed with the first key of PII_ENCRYPTION_KEYS (sealed with an older key, "
            "or stored as plain text before encryption). Keep the older keys in the "
            "setting, after the new first one, until it has finished; interrupted, run it "
            "again and it goes on where it stopped. Exits 1 if some number opens with no "
            "configured key."
        ),
    )
    rotate.add_argument(
        "--batch", type=_positive, default=500, metavar="N", help="documents per batch (500)"
    )
    rotate.set_defaults(handler=_rotate_keys)

    token = commands.add_parser(
        "token",
        help="mint a development token for a role (trusted only in dev mode)",
        description=(
            "Print a bearer token signed by the development key under "
            "GATEWAY_DATA_DIR/dev-keys, which the gateway trusts only in dev mode "
            "(GATEWAY_DEV_MODE, on by default). Send it as 'Authorization: Bearer <token>'."
        ),
    )
    token.add_argument("--role", required=True, choices=["member", "owner", "service", "operator"])
    token.add_argument("--enterprise", metavar="USCC", help="the owner's enterprise (owner only)")
    token.add_argument(
        "--scope",
        action="append",
        metavar="S",
        help=(
            "a scope for a service client, repeatable: identity:read, identity:verify, "
            "risk:read, corrections:request, corrections:resolve, service-status:write"
        ),
    )
    token.add_argument(
        "--platform", choices=["1688", "taobao", "tmall", "alibaba_com"], help="platform claim"
    )
    token.add_argument("--subject", metavar="ID", help="the token's subject (default dev-<role>)")
    token.add_argument(
        "--ttl",
        type=_duration,
        default=dt.timedelta(hours=1),
        metavar="DURATION",
        help="lifetime, e.g. 30m, 1h, 2d (default 1h)",
    )
    token.set_defaults(handler=_token)

    contracts = commands.add_parser(
        "export-contracts",
        help="write each source collection's contract as JSON Schema (docs/contracts)",
        description=(
            "Write the declared shape of every collection the gateway reads, one "
            "MongoDB $jsonSchema document per collection, as committed in docs/contracts."
        ),
    )
    contracts.add_argument(
        "--output", "-o", default="docs/contracts", metavar="DIR", help="default: docs/contracts"
    )
    contracts.set_defaults(handler=_export_contracts)

    validators = commands.add_parser(
        "ensure-validators",
        help="install the contracts as MongoDB validators on the source collections",
        description=(
            "Install each collection's contract as its MongoDB validator "
            "(validationLevel moderate). With --action warn (the default) MongoDB logs a "
            "write that breaks it; with error it refuses the write. Needs collMod on "
            "the sources; exits 1 if any collection refused."
        ),
    )
    validators.add_argument("--action", choices=["warn", "error"], default="warn")
    validators.set_defaults(handler=_ensure_validators)

    export = commands.add_parser(
        "export-schema",
        help="print the GraphQL schema (SDL), as committed in schema.graphql",
        description="Print the schema; `integrity-gateway export-schema > schema.graphql`.",
    )
    export.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of stdout")
    export.set_defaults(handler=_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.embedded import EmbeddedError

    args = build_parser().parse_args(argv)
    handler = args.handler
    try:
        result: int = handler(args)
    except EmbeddedError as exc:
        # Most often: another process (`serve`) holds the embedded store. One line.
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    raise SystemExit(main())
