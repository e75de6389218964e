"""Fixtures and guards shared by the whole test suite.

What lives here and why:

- **Real servers behind one fixture each.** ``redis_url`` and ``amqp_url`` read
  ``MDP_TEST_REDIS_URL`` / ``MDP_TEST_AMQP_URL`` (defaults: ``redis://127.0.0.1:6379/15`` and
  ``amqp://guest:guest@127.0.0.1:5672/``) and probe the server once per session with a real
  connection attempt. A missing server skips the tests that need it, with the reason; under
  ``CI=true`` it fails them instead, because CI must never pass by skipping.
- **PostgreSQL** is not a shared server: ``postgres_server`` starts a private cluster for the
  run (``mdp_testing.postgres_server``) and ``postgres_url`` creates one empty database per
  test; missing binaries skip, or fail under ``CI=true``.
- **Isolation.** Redis logical database 15 is reserved for tests: ``redis_db_url`` flushes it
  before and after each test, holding a machine-wide file lock meanwhile so that two test runs
  sharing one Redis (several checkouts, several terminals) never flush each other's data; a
  test that cannot get the lock within 60 s fails with a message saying so. The pytest-xdist
  workers of one run (``dev.py test``) take turns the same way, and must: pub/sub channels
  are server-wide, so tests on one Redis hear each other's publications whatever database
  each uses.
  RabbitMQ has no cheap per-test vhost, so ``mdq_prefix`` hands out a unique queue-name prefix
  and deletes every queue and exchange declared with it once the test ends.
- **Network guard.** Every test runs with outbound connections restricted to loopback and unix
  sockets; anything else raises :class:`NonLoopbackConnectionError` at once, so a test can never
  reach the internet or a vendor by accident.
- **Hypothesis profiles.** ``dev`` (default) and ``ci`` (selected by ``CI=true``: more examples,
  derandomized so a CI failure reproduces); ``MDP_HYPOTHESIS_PROFILE`` overrides both.
- Tests under ``tests/integration/`` get the ``integration`` marker automatically.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import ipaddress
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import SplitResult, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PROBE_TIMEOUT_SECONDS = 2.0

_TESTS_DIR = Path(__file__).resolve().parent
_INTEGRATION_DIR = _TESTS_DIR / "integration"


def in_ci() -> bool:
    """Whether the run is CI, where a missing server is a failure rather than a skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


# --------------------------------------------------------------------------------------------
# Hypothesis profiles

settings.register_profile(
    "dev",
    max_examples=100,
    # A loaded 2-core machine runs several suites at once; a tight deadline would only flake.
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "mutation",
    # `python3 dev.py mutate`: a verdict per mutant must not depend on luck, and each mutant
    # reruns its tests, so fewer examples than CI, always the same ones.
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HYPOTHESIS_PROFILE = os.environ.get("MDP_HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)


@pytest.fixture(autouse=True)
def _fresh_caches_under_mutation() -> None:
    """Under mutmut, empty the project's ``lru_cache`` memos before each test.

    mutmut forks each mutant from a process that already ran the tests, so a memoised
    function (the calendar's holiday tables, the WDS grant globs) would answer from the clean
    run's cache and the mutant would never execute.
    """
    if "MUTANT_UNDER_TEST" not in os.environ:
        return
    for name, module in list(sys.modules.items()):
        if not name.startswith("mdp_") or module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


def pytest_report_header() -> list[str]:
    """Say in the header which mode the run is in, so a log explains skips and failures."""
    return [
        f"mdp: CI={'true' if in_ci() else 'false'}, hypothesis profile {HYPOTHESIS_PROFILE!r}",
    ]


# What a test does when it takes a path that restarts or times out something: a private server
# killed and started again, a link cut, a backoff. `python3 dev.py rerun` (CI) repeats them all.
_RESTART_OR_TIMING = re.compile(
    r"\bRedisServer\b|\bTcpProxy\b|\.(kill|crash|restart|cut)\(|restart|backoff|outage|reconnect"
)


def _touches_restart_or_timing(item: pytest.Item) -> bool:
    function = getattr(item, "function", None)
    if function is None:
        return False
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return _RESTART_OR_TIMING.search(f"{item.name}\n{source}") is not None


def rerun_by_default(item: pytest.Item) -> bool:
    """Whether ``dev.py rerun`` repeats an integration test it was not told about.

    A test whose body starts a private server or proxy, kills or restarts one or cuts a link
    (the paths that flaked before), unless it carries ``steady``: its private server is only
    for isolation (a benchmark that flushes its database), and repeating it would spend the
    reruns' time on nothing that restarts.
    """
    return item.get_closest_marker("steady") is None and _touches_restart_or_timing(item)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``tests/integration/`` as ``integration``, and its restart or timing tests ``restart``.

    ``restart`` is added as :func:`rerun_by_default` says; a test can also carry it explicitly
    (a backoff measured through a real reconnect).
    """
    for item in items:
        if item.path.is_relative_to(_INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)
            if rerun_by_default(item):
                item.add_marker(pytest.mark.restart)


# --------------------------------------------------------------------------------------------
# Network guard


class NonLoopbackConnectionError(RuntimeError):
    """A test tried to reach a host other than loopback.

    A RuntimeError rather than an OSError on purpose: client libraries treat OSError as a
    transient network failure and retry, which would hide the mistake.
    """


def is_loopback_host(host: str | bytes | None) -> bool:
    """Whether ``host`` (name or address literal) designates this machine's loopback."""
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else host
    text = text.strip().lower()
    if text in {"localhost", "localhost."} or text.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _is_address_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _check_target(family: int, address: object) -> None:
    if family not in {socket.AF_INET, socket.AF_INET6}:
        return  # unix sockets, netlink and friends never leave the machine
    host = address[0] if isinstance(address, tuple) and address else address
    if not isinstance(host, str | bytes) or not is_loopback_host(host):
        msg = f"tests may only connect to loopback; refused a connection to {address!r}"
        raise NonLoopbackConnectionError(msg)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection (or DNS lookup) that would leave the machine."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        _check_target(self.family, address)
        real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        _check_target(self.family, address)
        return real_connect_ex(self, address)

    def guarded_create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        _check_target(socket.AF_INET, address)
        return real_create_connection(address, *args, **kwargs)

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # Resolving a real name is itself traffic (to the DNS server); literals are local.
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and not is_loopback_host(host) and not _is_address_literal(host):
            msg = f"tests may only reach loopback; refused to resolve {host!r}"
            raise NonLoopbackConnectionError(msg)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "create_connection", guarded_create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


# --------------------------------------------------------------------------------------------
# Server probes


class ServerUnusableError(Exception):
    """The server answered, but not the way a usable Redis or RabbitMQ would."""


def redact(url: str) -> str:
    """Return ``url`` with any password replaced, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the real servers are required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process holds: it accepts connections and never answers."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


@pytest.fixture
def rabbitmq_installed() -> None:
    """Skip (fail under CI) unless private RabbitMQ nodes can be started here."""
    from mdp_testing.rabbitmq_cluster import find_rabbitmq_bin

    if find_rabbitmq_bin() is None:
        _unavailable("rabbitmq-server is not installed")


@pytest.fixture
def postgres_installed() -> None:
    """Skip (fail under CI) unless a private PostgreSQL cluster can be started here."""
    from mdp_testing.postgres_server import find_postgres_bin

    if find_postgres_bin() is None:
        _unavailable("no PostgreSQL binaries (initdb) found")


def _resp(args: Sequence[str]) -> bytes:
    """Encode one command in RESP, the Redis wire protocol."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _redis_db(parts: SplitResult) -> int:
    path = parts.path.strip("/")
    try:
        return int(path) if path else 0
    except ValueError as exc:
        msg = f"the Redis URL path must be a database number; it was {parts.path!r}"
        raise ServerUnusableError(msg) from exc


def redis_call(url: str, *commands: Sequence[str]) -> list[bytes]:
    """Run simple-reply Redis commands on the URL's database over a plain socket.

    The fixtures use this tiny client instead of redis-py so that probing and flushing stay
    synchronous, need no event loop, and cannot leak a connection pool between tests.

    Raises:
        OSError: when nothing listens at the URL.
        ServerUnusableError: when the server replies with an error or not like Redis.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        msg = f"only redis:// URLs are supported by the test probe; got {parts.scheme!r}"
        raise ServerUnusableError(msg)
    preamble: list[list[str]] = []
    if parts.password is not None:
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password)
        preamble.append(["AUTH", user, password] if user else ["AUTH", password])
    preamble.append(["SELECT", str(_redis_db(parts))])
    replies: list[bytes] = []
    address = (parts.hostname or "127.0.0.1", parts.port or 6379)
    with (
        socket.create_connection(address, timeout=PROBE_TIMEOUT_SECONDS) as sock,
        sock.makefile("rb") as reader,
    ):
        for command in [*preamble, *commands]:
            sock.sendall(_resp(command))
            reply = reader.readline().rstrip(b"\r\n")
            if not reply or reply[:1] not in {b"+", b"-", b":"}:
                msg = f"unexpected reply to {command[0]}: {reply[:80]!r}"
                raise ServerUnusableError(msg)
            if reply.startswith(b"-"):
                msg = f"{command[0]} failed: {reply[1:].decode(errors='replace')}"
                raise ServerUnusableError(msg)
            replies.append(reply[1:])
    return replies[len(preamble) :]


# AMQP 0-9-1: the client opens with this header; a broker answers with a Connection.Start
# method frame (frame type 1, channel 0, class 10, method 10).
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_FRAME_METHOD = 1
_CONNECTION_START = (10, 10)


def amqp_probe(url: str) -> None:
    """Open a TCP connection to the broker and check it starts an AMQP 0-9-1 handshake.

    Raises:
        OSError: when nothing listens at the URL.
        ServerUnusableError: when the peer does not speak AMQP 0-9-1.
    """
    parts = urlsplit(url)
    if parts.scheme != "amqp":
        msg = f"only amqp:// URLs are supported by the test probe; got {parts.scheme!r}"
        raise ServerUnusableError(msg)
    address = (parts.hostname or "127.0.0.1", parts.port or 5672)
    with (
        socket.create_connection(address, timeout=PROBE_TIMEOUT_SECONDS) as sock,
        sock.makefile("rb") as reader,
    ):
        sock.sendall(_AMQP_HEADER)
        head = reader.read(11)  # type(1) channel(2) size(4) class(2) method(2)
    if len(head) < 11 or head[0] != _FRAME_METHOD:
        msg = f"the peer did not answer with an AMQP 0-9-1 frame: {head[:11]!r}"
        raise ServerUnusableError(msg)
    class_id = int.from_bytes(head[7:9], "big")
    method_id = int.from_bytes(head[9:11], "big")
    if (class_id, method_id) != _CONNECTION_START:
        msg = f"expected Connection.Start, got class {class_id} method {method_id}"
        raise ServerUnusableError(msg)


def _probe_or_skip(kind: str, url: str, probe: Callable[[str], object]) -> str:
    try:
        probe(url)
    except (OSError, ServerUnusableError) as exc:
        problem = f"{kind} not usable at {redact(url)}: {exc}"
    else:
        return url
    # Outside the except block, so the skip or failure carries no exception chain.
    _unavailable(problem)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis for integration tests (probed once per session)."""
    url = os.environ.get("MDP_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    return _probe_or_skip("Redis", url, lambda u: redis_call(u, ["PING"]))


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the real RabbitMQ for integration tests (probed once per session)."""
    url = os.environ.get("MDP_TEST_AMQP_URL") or DEFAULT_AMQP_URL
    return _probe_or_skip("RabbitMQ", url, amqp_probe)


def _started_postgres() -> Any:
    from mdp_testing.postgres_server import PostgresServer, PostgresServerUnavailable

    server = PostgresServer()
    problem = ""
    try:
        server.start()
    except (PostgresServerUnavailable, OSError, subprocess.SubprocessError) as exc:
        problem = f"PostgreSQL not usable: {exc}"
    if problem:
        server.stop()
        _unavailable(problem)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A private PostgreSQL cluster for the run (initdb in a temp dir, free loopback port).

    Missing binaries or a failed start skip the tests that need it, or fail them under CI.
    """
    server = _started_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of the test's own, which it may pause and resume (outages)."""
    server = _started_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    """A new, empty database on the private cluster (``postgresql://`` URL)."""
    url: str = postgres_server.create_database()
    return url


# --------------------------------------------------------------------------------------------
# Per-test isolation


REDIS_LOCK_WAIT_SECONDS = 60.0


def _lock_or_fail(lock: IO[str], lock_path: Path, redis_url: str) -> None:
    """Take the test database's file lock, failing clearly if another run keeps it too long."""
    deadline = time.monotonic() + REDIS_LOCK_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                pytest.fail(
                    f"another test run has held the lock on {redact(redis_url)} ({lock_path}) "
                    f"for over {REDIS_LOCK_WAIT_SECONDS:.0f} s; wait for it or point "
                    "MDP_TEST_REDIS_URL at another Redis server (another database of the same "
                    "server would hear its publications: pub/sub is server-wide)",
                    pytrace=False,
                )
            # A file lock has nothing to wait on but time; no event loop runs during fixture
            # set-up, so a short blocking pause is harmless here.
            time.sleep(0.05)  # noqa: TID251
        else:
            return


def redis_server_of(redis_url: str) -> str:
    """``host:port`` of a Redis URL: what the test lock is keyed on (no database, no password)."""
    parts = urlsplit(redis_url)
    return f"{(parts.hostname or '127.0.0.1').lower()}:{parts.port or 6379}"


@pytest.fixture
def redis_db_url(redis_url: str) -> Iterator[str]:
    """The test Redis database, empty at the start of the test and flushed at its end.

    The database is shared by every test run on the machine, so the fixture holds an exclusive
    file lock for the whole test: concurrent runs take turns instead of flushing each other's
    keys. The lock is the server's (host and port), not the database's: pub/sub channels are
    server-wide, so two runs on two databases of one Redis would hear each other's
    publications. Database 0 is refused, as it is where real data lives.
    """
    if _redis_db(urlsplit(redis_url)) == 0:
        pytest.fail(
            f"refusing to flush database 0 of {redact(redis_url)}; point MDP_TEST_REDIS_URL "
            "at a database reserved for tests (the default is /15)",
            pytrace=False,
        )
    digest = hashlib.sha256(redis_server_of(redis_url).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"mdp-test-redis-{digest}.lock"
    with lock_path.open("a") as lock:
        _lock_or_fail(lock, lock_path, redis_url)
        redis_call(redis_url, ["FLUSHDB"])
        try:
            yield redis_url
        finally:
            redis_call(redis_url, ["FLUSHDB"])


@pytest.fixture
async def mdq_prefix(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A unique queue/exchange name prefix; what the test declares with it is deleted after.

    AMQP cannot list queues, so the fixture records every queue and exchange whose name
    starts with the prefix as it is declared through aiormq (which aio-pika uses), then
    deletes them at teardown. Declarations made by other processes are not seen: a test that
    starts a service in a subprocess must delete its own queues.
    """
    import aio_pika
    import aiormq

    prefix = f"mdptest.{uuid.uuid4().hex[:12]}."
    queues: set[str] = set()
    exchanges: set[str] = set()
    real_queue_declare = aiormq.Channel.queue_declare
    real_exchange_declare = aiormq.Channel.exchange_declare

    async def recording_queue_declare(self: Any, queue: str = "", *args: Any, **kw: Any) -> Any:
        result = await real_queue_declare(self, queue, *args, **kw)
        if queue.startswith(prefix):
            queues.add(queue)
        return result

    async def recording_exchange_declare(
        self: Any, exchange: str = "", *args: Any, **kw: Any
    ) -> Any:
        result = await real_exchange_declare(self, exchange, *args, **kw)
        if exchange.startswith(prefix):
            exchanges.add(exchange)
        return result

    monkeypatch.setattr(aiormq.Channel, "queue_declare", recording_queue_declare)
    monkeypatch.setattr(aiormq.Channel, "exchange_declare", recording_exchange_declare)
    try:
        yield prefix
    finally:
        if queues or exchanges:
            connection = await aio_pika.connect(amqp_url, timeout=10)
            async with connection:
                for queue in sorted(queues):
                    channel = await connection.channel()
                    await channel.queue_delete(queue)
                    await channel.close()
                for exchange in sorted(exchanges):
                    channel = await connection.channel()
                    await channel.exchange_delete(exchange)
                    await channel.close()
