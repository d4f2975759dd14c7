"""What `make run` does: no URLs configured, so embedded servers, seeding, and clean exit."""

from __future__ import annotations

import gc
import socket
from pathlib import Path

import pytest

from gateway.app import create_app, settle_collector
from gateway.settings import Settings, Source
from gateway.sources import Sources
from tests.conftest import graphql, serving


def _listening(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


async def test_no_urls_means_embedded_servers_seeded_and_stopped(tmp_path: Path) -> None:
    settings = Settings(
        mongodb_url=None, redis_url=None, gateway_data_dir=tmp_path, gateway_seed_enterprises=3
    )
    async with serving(settings) as client:
        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        mongodb_url = runtime.embedded_mongodb_url
        body = await graphql(client, '{ enterprise(uscc: "91330110MAJPDCW44H") { name } }')
        ready = (await client.get("/readyz")).json()
        assert _listening(mongodb_url)

    assert body == {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}
    assert ready["status"] == "ready" and ready["redis"] == "ok"
    assert not _listening(mongodb_url)
    assert (tmp_path / "mongodb" / "wiredtiger").is_dir()


async def test_the_banner_shows_where_to_go_and_a_token_per_role(
    settings: Settings, seeded: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings, banner=True)
    async with app.router.lifespan_context(app):
        authenticator = app.state.runtime.authenticator
        lines = capsys.readouterr().out.splitlines()

    assert "  integrity-gateway is ready: GraphiQL at http://127.0.0.1:8000/graphql" in lines
    start = lines.index("  example USCCs (enterprise, individual business, cooperative):")
    examples = [line.strip() for line in lines[start + 1 : start + 4]]
    assert [uscc[:2] for uscc in examples] == ["91", "92", "93"]
    assert all(uscc in seeded for uscc in examples)
    tokens = [line.split()[-1] for line in lines if line.startswith("    ") and "eyJ" in line]
    viewers = [await authenticator.authenticate(f"Bearer {token}") for token in tokens]
    assert [type(viewer).__name__ for viewer in viewers] == [
        "Member",
        "Owner",
        "ServiceClient",
        "Operator",
    ]
    assert viewers[1].enterprise == examples[0]
    assert viewers[2].scopes == {
        "identity:read",
        "identity:verify",
        "risk:read",
        "corrections:request",
        "corrections:resolve",
        "service-status:write",
    }


async def test_start_up_work_waits_longer_than_a_request_but_not_for_a_dead_source(
    settings: Settings,
) -> None:
    """Index builds and the seed check get STARTUP_TIMEOUT_MS to answer; finding out
    that a source is down still takes MONGODB_TIMEOUT_MS, as for a request."""
    from gateway.sources import Sources

    startup = Sources.from_settings(settings, None, socket_timeout_ms=120_000)
    requests = Sources.from_settings(settings, None)
    try:
        for sources, socket_s in ((startup, 120.0), (requests, 2.0)):
            options = sources.db(Source.REGISTRY).client.options
            assert options.pool_options.socket_timeout == socket_s
            assert options.server_selection_timeout == 2.0
    finally:
        await startup.close()
        await requests.close()


async def test_slow_work_is_not_taken_for_a_dead_store(settings: Settings) -> None:
    """A request's client gives up after MONGODB_TIMEOUT_MS. Start-up's and seeding's wait
    as long as their work for the monitor's heartbeat too (its timeout is the connect
    timeout): the embedded store answers nothing while it builds an index, and a
    heartbeat taken for a dead server cancels the very command it waited behind. All of
    them still find a source that is down within MONGODB_TIMEOUT_MS (server selection)."""
    timeout = settings.mongodb_timeout_ms / 1000
    startup = settings.startup_timeout_ms / 1000
    opened = {
        "request": Sources.from_settings(settings, None),
        "start-up": Sources.from_settings(
            settings, None, socket_timeout_ms=settings.startup_timeout_ms
        ),
        "bulk": Sources.from_settings(settings, None, bulk=True),
    }
    try:
        found = {}
        for name, sources in opened.items():
            [client] = sources._clients.values()
            pool = client.options.pool_options
            found[name] = (
                pool.connect_timeout,
                pool.socket_timeout,
                client.options.server_selection_timeout,
            )
    finally:
        for sources in opened.values():
            await sources.close()
    assert found == {
        "request": (timeout, timeout, timeout),
        "start-up": (startup, startup, timeout),
        "bulk": (600.0, None, timeout),
    }


def test_a_serving_process_settles_the_collector() -> None:
    """``serve`` freezes what lives as long as the process and lets the youngest
    collection wait for 5,000 net new objects (gateway/app.py ``settle_collector``)."""
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    try:
        settle_collector()
        assert gc.get_threshold() == (5_000, before[1], before[2])
        assert gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
