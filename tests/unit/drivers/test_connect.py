"""Connecting: a refused password and an unreachable server give different one-line errors,
the same from the sync and the asyncio client, and neither shows the URL's secret; every
secret form redis-py reads from a URL is masked by ``mask_url``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio
import redis.connection
from hypothesis import given
from strategies import url_passwords

from ftctl.drivers import async_connect, connect, given_client, mask_url
from ftctl.drivers.connect import _SHOWN_OPTIONS
from ftctl.errors import ConnectionFailed, UsageError

URL = "redis://alice:s3cret@db.example:6380/0"

CASES = [
    pytest.param(
        redis.AuthenticationError("WRONGPASS invalid username-password pair"),
        "refused the credentials",
        id="wrong-password",
    ),
    pytest.param(
        redis.exceptions.AuthenticationWrongNumberOfArgsError("wrong number of arguments"),
        "refused the credentials",
        id="user-on-a-server-without-acls",
    ),
    pytest.param(redis.ConnectionError("Connection refused"), "cannot reach", id="refused"),
    pytest.param(redis.TimeoutError("Timeout connecting"), "cannot reach", id="timeout"),
]


class _FakeClient:
    """A client whose PING fails with ``error``; records whether it was closed."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def ping(self) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


class _FakeAsyncClient:
    """The asyncio twin of :class:`_FakeClient`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    async def ping(self) -> None:
        raise self.error

    async def aclose(self) -> None:
        self.closed = True


def _fake(monkeypatch: pytest.MonkeyPatch, cls: Any, client: object) -> None:
    monkeypatch.setattr(cls, "from_url", lambda url, **kwargs: client)


def _check(err: ConnectionFailed, expected: str, client: _FakeClient | _FakeAsyncClient) -> None:
    assert expected in err.message
    assert "s3cret" not in err.one_line() and "alice" not in err.one_line()
    assert "***@db.example:6380" in err.message
    assert client.closed


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_sync_connect_names_the_cause(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    """A refused password says so (it subclasses ConnectionError, so its branch comes first)."""
    client = _FakeClient(error)
    _fake(monkeypatch, redis.Redis, client)
    with pytest.raises(ConnectionFailed) as caught:
        connect(URL)
    _check(caught.value, expected, client)


@pytest.mark.parametrize(("error", "expected"), CASES)
async def test_async_connect_names_the_cause_like_sync(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    """The asyncio client gives the same message as the sync one for the same failure."""
    client = _FakeAsyncClient(error)
    _fake(monkeypatch, redis.asyncio.Redis, client)
    with pytest.raises(ConnectionFailed) as caught:
        await async_connect(URL)
    _check(caught.value, expected, client)


# --- mask_url: every form redis-py reads a secret from --------------------------------------

PW = "S3cr3t-Zq9"
"""The secret of every case below; no masked URL may contain it, nor ``USER``."""
USER = "ops-Kx7q"

MASKED = [
    # (url, masked)
    (f"redis://{USER}:{PW}@db.example:6380/0", "redis://***@db.example:6380/0"),
    (f"redis://:{PW}@db.example", "redis://***@db.example"),
    (f"rediss://{USER}:{PW}@db.example:6380/1", "rediss://***@db.example:6380/1"),
    (f"REDIS://{USER}:{PW}@db.example", "REDIS://***@db.example"),
    (f"redis://{USER}@db.example:6379", "redis://***@db.example:6379"),
    (f"redis://{USER}:{PW}@[::1]:6379/0", "redis://***@[::1]:6379/0"),
    (f"redis://db.example:6379/0?password={PW}", "redis://db.example:6379/0?password=***"),
    (
        f"redis://db.example/0?username={USER}&password={PW}&socket_timeout=2.5",
        "redis://db.example/0?username=***&password=***&socket_timeout=2.5",
    ),
    (
        f"rediss://db.example:6380?ssl_keyfile=/etc/k.pem&ssl_password={PW}&ssl_cert_reqs=none",
        "rediss://db.example:6380?ssl_keyfile=/etc/k.pem&ssl_password=***&ssl_cert_reqs=none",
    ),
    (f"unix://{USER}:{PW}@/run/redis.sock?db=0", "unix://***@/run/redis.sock?db=0"),
    (f"unix:///run/redis.sock?db=2&password={PW}", "unix:///run/redis.sock?db=2&password=***"),
    # percent-encoded: in the user info, in a query value, in a query option's name
    (f"redis://{USER}:{quote(PW + '@/:#?&', safe='')}@h:1", "redis://***@h:1"),
    (f"redis://h/0?password={quote(PW + '&=#/', safe='')}", "redis://h/0?password=***"),
    (f"redis://h/0?pass%77ord={PW}", "redis://h/0?***"),
    (f"redis://h/0?password={PW.replace('-', '+')}", "redis://h/0?password=***"),
    # options ftctl does not know, and known ones in a shape that is not theirs
    (
        f"redis://h/0?credential={PW}&client_name=ftctl",
        "redis://h/0?credential=***&client_name=ftctl",
    ),
    (f"redis://h?password=ab&db={PW}", "redis://h?password=***&db=***"),
    (f"redis://h?password=ab&{PW}", "redis://h?password=***&***"),
    (f"redis://h?db=0;password={PW}", "redis://h?db=***"),
    # a password with an unencoded reserved character splits the URL: keep the scheme only
    (f"redis://{USER}:{PW}@db.example:notaport", "redis://***"),
    (f"redis://{USER}:{PW}@db.example:99999", "redis://***"),
    (f"redis://{USER}:ab/{PW}@db.example:6379", "redis://***"),
    (f"redis://:12#{PW}@db.example:6379", "redis://***"),
    (f"redis://:12?{PW}@db.example:6379", "redis://***"),
    (f"redis://db.example/0?password=ab#{PW}", "redis://***"),
    (f"redis://db.example/0?password={PW}@x", "redis://***"),
    (f"redis://:{PW}@[::1:6379", "redis://***"),
    # not a URL at all
    (f"{USER}:{PW}@db.example", "***"),
    (f"redis:{PW}", "***"),
    ("localhost:6379", "localhost:6379"),
    # nothing to mask
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("redis://h/0?db=3&protocol=3&retry_on_error=TimeoutError,ConnectionError", None),
    ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ("", ""),
]


@pytest.mark.parametrize(("url", "masked"), MASKED, ids=[f"{i}" for i in range(len(MASKED))])
def test_mask_url_masks_every_secret_form(url: str, masked: str | None) -> None:
    """Each secret form (user info, password/username/ssl_password query options,
    percent-encoding, unix sockets, options ftctl does not know, a URL that an unencoded
    character splits) comes out masked as expected, and masking it again changes nothing."""
    got = mask_url(url)
    assert got == (url if masked is None else masked)
    assert PW not in got and USER not in got
    assert mask_url(got) == got


@pytest.mark.parametrize("url", [u for u, _ in MASKED if "://" in u and "unix://" not in u[:7]])
def test_nothing_redis_py_reads_as_a_secret_survives_masking(url: str) -> None:
    """What redis-py's own parser takes as the user, password or TLS key passphrase never
    appears in the masked URL (the table above is checked against the parser it mirrors)."""
    try:
        options = redis.connection.parse_url(url)
    except ValueError:
        return  # redis-py refuses it; the cases above check that its text is masked anyway
    masked = mask_url(url)
    for name in ("username", "password", "ssl_password"):
        value = options.get(name)
        if value:
            assert str(value) not in masked, name


def test_every_option_redis_py_parses_is_classified() -> None:
    """Every query option redis-py parses to a typed value is one mask_url shows, so a new
    redis-py version's option is a decision to make here (shown or masked), not an accident."""
    assert set(redis.connection.URL_QUERY_ARGUMENT_PARSERS) <= set(_SHOWN_OPTIONS)
    assert not {"password", "username", "ssl_password", "ssl_ca_data"} & set(_SHOWN_OPTIONS)


@given(url_passwords())
def test_any_password_in_the_user_info_is_masked(password: str) -> None:
    """A password pasted raw into the user info, reserved characters and all, is masked
    whole: the URL either splits cleanly or keeps only its scheme, never a piece of it."""
    masked = mask_url(f"redis://{USER}:{password}@db.example:6380/0")
    assert masked in {"redis://***@db.example:6380/0", "redis://***"}
    encoded = mask_url(f"redis://{USER}:{quote(password, safe='')}@db.example:6380/0")
    assert encoded == "redis://***@db.example:6380/0"


@given(url_passwords())
def test_any_encoded_password_query_option_is_masked(password: str) -> None:
    """A percent-encoded ``password=`` query option is masked whatever the password holds."""
    for name in ("password", "username", "ssl_password"):
        masked = mask_url(f"rediss://db.example/0?{name}={quote(password, safe='')}&db=1")
        assert masked == f"rediss://db.example/0?{name}=***&db=1"


# --- what redis-py itself raises about a URL ------------------------------------------------

BAD_URLS = [
    pytest.param(f"redis://{USER}:{PW}@127.0.0.1:notaport", "redis://***", id="bad-port"),
    pytest.param(f"redis://{USER}:{PW}/x@127.0.0.1:6379", "redis://***", id="unencoded-slash"),
    pytest.param(
        f"redis://127.0.0.1:1/0?password={PW}&db=x{PW}",
        "redis://127.0.0.1:1/0?password=***&db=***",
        id="bad-db-option",
    ),
    pytest.param(
        f"redis://127.0.0.1:1/0?ssl_password={PW}",
        "redis://127.0.0.1:1/0?ssl_password=***",
        id="tls-option-on-plain-tcp",
    ),
    pytest.param(
        f"redis://127.0.0.1:1/0?{PW}_x=1", "redis://127.0.0.1:1/0?***", id="unknown-option"
    ),
]


@pytest.mark.parametrize(("url", "masked"), BAD_URLS)
async def test_a_url_redis_py_refuses_is_a_masked_usage_error(url: str, masked: str) -> None:
    """A URL redis-py refuses (a port that does not parse, often a password's piece; a bad or
    unknown option) is a one-line UsageError (exit 2) naming the masked URL, sync and async;
    redis-py's own text, which may quote the piece it choked on, never carries the secret."""
    errors: list[UsageError] = []
    with pytest.raises(UsageError) as sync:
        connect(url)
    errors.append(sync.value)
    with pytest.raises(UsageError) as aio:
        await async_connect(url)
    errors.append(aio.value)
    for err in errors:
        assert f"'{masked}' is not a valid Redis URL" in err.message
        assert PW not in err.one_line() and USER not in err.one_line()
        assert err.exit_code == 2
    assert errors[0].one_line() == errors[1].one_line()


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(redis.ConnectionError(f"Error 8 connecting to {PW}:6379."), id="refused"),
        pytest.param(redis.AuthenticationError(f"WRONGPASS {USER}"), id="wrong-password"),
        pytest.param(
            redis.exceptions.NoPermissionError(f"User {USER} has no permissions"), id="acl"
        ),
    ],
)
def test_an_error_text_quoting_a_secret_is_left_out(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """When redis-py's or the server's text quotes the URL's user or password, the one-line
    error keeps the masked URL and drops that text."""
    client = _FakeClient(error)
    _fake(monkeypatch, redis.Redis, client)
    with pytest.raises(ConnectionFailed) as caught:
        connect(f"redis://{USER}:{PW}@db.example:6380/0")
    line = caught.value.one_line()
    assert "redis://***@db.example:6380/0" in line
    assert PW not in line and USER not in line
    assert client.closed


def test_given_client_takes_either_name_once() -> None:
    """redis_client= (RedisVL's name) and its alias client= name the same argument: either
    one, or both with the same client, is that client; none is None."""
    one = redis.Redis()
    assert given_client(one, None) is one
    assert given_client(None, one) is one
    assert given_client(one, one) is one
    assert given_client(None, None) is None


def test_given_client_refuses_two_different_clients() -> None:
    """Two different clients would leave it unclear which server is meant: UsageError."""
    with pytest.raises(UsageError, match="two different clients"):
        given_client(redis.Redis(), redis.Redis())
