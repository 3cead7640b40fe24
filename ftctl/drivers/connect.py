"""Client construction from a URL, and the one place a URL's secret is masked."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_plus, urlsplit

import redis
import redis.asyncio

from ftctl.errors import ConnectionFailed, FtctlError, UsageError

DEFAULT_URL = "redis://localhost:6379"
MASK = "***"

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")
_WORD = re.compile(r"\w*")
_NAMES = re.compile(r"[\w,\[\] ]*")
_PATH = re.compile(r"[\w./:+~-]*")

_SHOWN_OPTIONS: dict[str, re.Pattern[str]] = {
    # redis-py parses these to numbers, booleans or lists of names (URL_QUERY_ARGUMENT_PARSERS)
    "db": _INT,
    "socket_timeout": _FLOAT,
    "socket_connect_timeout": _FLOAT,
    "socket_read_size": _INT,
    "socket_keepalive": _WORD,
    "retry_on_timeout": _WORD,
    "retry_on_error": _NAMES,
    "max_connections": _INT,
    "health_check_interval": _INT,
    "ssl_check_hostname": _WORD,
    "ssl_validate_ocsp": _WORD,
    "ssl_validate_ocsp_stapled": _WORD,
    "ssl_include_verify_flags": _NAMES,
    "ssl_exclude_verify_flags": _NAMES,
    "ssl_min_version": _INT,
    "timeout": _FLOAT,
    "protocol": _INT,
    "legacy_responses": _WORD,
    # strings redis-py passes through: names and file paths, no secret
    "client_name": _PATH,
    "lib_name": _PATH,
    "lib_version": _PATH,
    "encoding": _PATH,
    "encoding_errors": _PATH,
    "ssl_cert_reqs": _WORD,
    "ssl_certfile": _PATH,
    "ssl_keyfile": _PATH,
    "ssl_ca_certs": _PATH,
    "ssl_ca_path": _PATH,
    "ssl_ciphers": _PATH,
}
"""Query options whose value :func:`mask_url` shows, each with the shape the (decoded) value
must have to be shown. redis-py passes *every* query option to the connection, so any other
option's value is masked: ``password``, ``username`` and ``ssl_password`` (the TLS key's
passphrase) are secrets, and an option ftctl does not know might be one. A shown option whose
value has another shape is masked too: that is what an unencoded ``&`` in a password looks
like (``?password=ab&db=cd``)."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_HOST = re.compile(r"[\w.-]+(:[0-9]+)?")


@dataclass(frozen=True)
class _Masked:
    text: str
    secrets: tuple[str, ...]
    """Every secret the URL holds, raw and decoded (to keep them out of error texts)."""
    malformed: bool
    """The URL does not split cleanly, so a secret's pieces may sit anywhere in it."""


def _mask_query(query: str, secrets: list[str]) -> str:
    fields: list[str] = []
    for field in query.split("&"):
        name, eq, value = field.partition("=")
        shape = _SHOWN_OPTIONS.get(unquote_plus(name))
        if not field or (eq and shape is not None and shape.fullmatch(unquote_plus(value))):
            fields.append(field)
        elif eq and _OPTION_NAME.fullmatch(name):
            fields.append(f"{name}={MASK}")
            secrets += [value, unquote_plus(value)]
        else:
            fields.append(MASK)
            secrets += [s for part in (field, name, value) for s in (part, unquote_plus(part))]
    return "&".join(fields)


def _mask(url: str) -> _Masked:
    """The one masking rule; :func:`mask_url` is its public face."""
    if not url:
        return _Masked("", (), False)
    scheme, sep, _rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        shown = url if _BARE_HOST.fullmatch(url) else MASK
        return _Masked(shown, (url,) if shown == MASK else (), shown == MASK)
    whole = _Masked(f"{scheme}://{MASK}", (url,), True)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number is often a password's piece
    except ValueError:
        return whole
    if "#" in url or "@" in parts.path + parts.query:
        # the user info ends at the first / ? #, so one left unencoded in a password pushes
        # the rest of it, and its @, into the path, query or fragment (which redis-py ignores)
        return whole
    secrets: list[str] = []
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{MASK}@{hostport}" if at else hostport
    if at:
        secrets += [userinfo, unquote(userinfo)]
        for piece in (parts.username, parts.password):
            if piece:
                secrets += [piece, unquote(piece)]
    query = _mask_query(parts.query, secrets) if parts.query else ""
    text = f"{scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return _Masked(text, tuple(s for s in dict.fromkeys(secrets) if s), False)


def mask_url(url: str) -> str:
    """The URL with every secret redis-py would read from it replaced by ``***``.

    Safe to log, print and persist. Masked: the user info (``user:password@``, ``:password@``,
    percent-encoded or not, for ``redis://``, ``rediss://`` and ``unix://``), the value of every
    query option that is not known to be harmless (``password``, ``username``,
    ``ssl_password``, …; see :data:`_SHOWN_OPTIONS`), and a query field that is not
    ``name=value``. A URL that does not split cleanly (a port that is not a number, a ``#``,
    an ``@`` after the host: an unencoded character in a password) keeps only its scheme:
    ``redis://***``. Masking a masked URL changes nothing. One split cannot be told from a
    well-formed URL: a query password with an unencoded ``&`` followed by what reads as a
    harmless option (``?password=ab&db=1`` for the password ``ab&db=1``) shows that option.
    """
    return _mask(url).text


def _reason(exc: BaseException, url: str) -> str:
    """``: <exc>`` when the exception's text holds none of the URL's secrets, else nothing."""
    masked = _mask(url)
    text = " ".join(str(exc).split())
    if not text or masked.malformed or any(secret in text for secret in masked.secrets):
        return ""
    return f": {text}"


def resolve_url(url: str | None) -> str:
    """The URL to use: the given one, then ``$REDIS_URL``, then ``redis://localhost:6379``."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_URL


def client_url(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where a client given without a URL connects, as a URL to record in a journal.

    Built from the pool's connection settings, so it never holds the password; a Unix
    socket client gives ``unix://<path>``.
    """
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


_URL_HINT = (
    "write it redis://[[user]:password@]host[:port][/db] (rediss:// for TLS, "
    "unix://[[user]:password@]/path.sock); percent-encode @ : / ? # & in a password"
)


def _bad_url(url: str, exc: BaseException) -> UsageError:
    if _mask(url).malformed:
        # the parser's own text would quote the piece it choked on: maybe a password's
        reason = ": its host, port or path does not parse"
    else:
        reason = _reason(exc, url)
    return UsageError(f"'{mask_url(url)}' is not a valid Redis URL{reason}", _URL_HINT)


def _check_scheme(url: str) -> None:
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"} or "://" not in url:
        raise UsageError(
            f"'{mask_url(url)}' is not a Redis URL",
            "use redis://host:port, rediss://host:port or unix:///path.sock",
        )


_CREDENTIALS_REFUSED = (
    redis.AuthenticationError,
    # AUTH with a user name against a server without ACLs (Redis < 6)
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
)
"""What PING raises when the server refuses the URL's user or password. AuthenticationError
subclasses ConnectionError, so these must be caught before :data:`_UNREACHABLE`."""

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)

_PING_FAILED = (redis.RedisError, OSError, TypeError, ValueError)
"""Everything PING can raise about the URL: the connection is made (and the URL's options
passed to it) only then, so an option redis-py does not accept is a TypeError here."""


def _ping_failed(url: str, exc: BaseException) -> FtctlError:
    """The one-line error for a failed first PING; no text of it holds the URL's secret."""
    masked, reason = mask_url(url), _reason(exc, url)
    if isinstance(exc, _CREDENTIALS_REFUSED):
        return ConnectionFailed(
            f"Redis at {masked} refused the credentials{reason}",
            "check the user and password in the URL",
        )
    if isinstance(exc, _UNREACHABLE):
        return ConnectionFailed(
            f"cannot reach Redis at {masked}{reason}",
            "start Redis (ftctl server start) or pass --url / set REDIS_URL",
        )
    if isinstance(exc, redis.ResponseError):
        return ConnectionFailed(
            f"Redis at {masked} refused PING{reason}", "check the ACL rules of the URL's user"
        )
    return _bad_url(url, exc)


def _timeouts(socket_timeout: float | None) -> dict[str, Any]:
    """redis-py's read timeout (its default is 5 s; a URL's ``socket_timeout`` still wins)."""
    return {} if socket_timeout is None else {"socket_timeout": socket_timeout}


def connect(
    url: str | None = None, *, protocol: int = 3, socket_timeout: float | None = None
) -> redis.Redis:
    """A sync client (raw bytes replies) that has answered PING.

    Raises UsageError for a URL redis-py cannot use and ConnectionFailed when the server
    cannot be reached or refuses the credentials; neither message holds the URL's secret.
    """
    resolved = resolve_url(url)
    _check_scheme(resolved)
    try:
        client = redis.Redis.from_url(
            resolved, protocol=protocol, decode_responses=False, **_timeouts(socket_timeout)
        )
    except ValueError as exc:
        raise _bad_url(resolved, exc) from None
    try:
        client.ping()
    except _PING_FAILED as exc:
        client.close()
        raise _ping_failed(resolved, exc) from None
    return client


async def async_connect(
    url: str | None = None, *, protocol: int = 3, socket_timeout: float | None = None
) -> redis.asyncio.Redis:
    """An asyncio client (raw bytes replies) that has answered PING; errors as :func:`connect`."""
    resolved = resolve_url(url)
    _check_scheme(resolved)
    try:
        client = redis.asyncio.Redis.from_url(
            resolved, protocol=protocol, decode_responses=False, **_timeouts(socket_timeout)
        )
    except ValueError as exc:
        raise _bad_url(resolved, exc) from None
    try:
        await client.ping()
    except _PING_FAILED as exc:
        await client.aclose()
        raise _ping_failed(resolved, exc) from None
    return client


ClientT = TypeVar("ClientT", redis.Redis, redis.asyncio.Redis)


def given_client(redis_client: ClientT | None, client: ClientT | None) -> ClientT | None:
    """The caller's client, passed as ``redis_client=`` (RedisVL's name) or ``client=``.

    ``client=`` is kept as an alias where the API first had it; giving two different clients
    is a :class:`UsageError`, since it is not clear which server the caller means.
    """
    if redis_client is not None and client is not None and redis_client is not client:
        raise UsageError(
            "two different clients were given (redis_client= and client=)",
            "pass one, as redis_client=",
        )
    return redis_client if redis_client is not None else client
