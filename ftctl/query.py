"""QueryEncoder / AsyncQueryEncoder: vector queries and writes that follow a public name.

An online migration that changes a vector's datatype swaps the index behind the public name
(an alias) at its cut-over, and the query blob format changes with it. An application that
encodes its vectors through an encoder needs no deploy synchronized with the cut-over: the
encoder knows the vector fields of the index currently behind the name (its ``FT.INFO``,
cached for ``max_age`` seconds), and :meth:`QueryEncoder.search` re-reads them and retries
once when the server refuses a blob's size. Both classes run the same sans-IO steps
(:mod:`ftctl.steps.query`) through the sync or the asyncio driver.

int8/uint8 fields need the quantization parameters the migration calibrated: they are in the
plan (``vector_changes[].params``), not on the server; :func:`quantization_params` takes them
out of a plan, and the encoders take them as ``quantization=``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import msgspec
import numpy.typing as npt
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect
from ftctl.errors import UsageError
from ftctl.logs import get_logger
from ftctl.plan.models import MigrationPlan, load_plan
from ftctl.plan.quantization import INTEGER_DATATYPES, QuantizationParams
from ftctl.steps import query
from ftctl.steps.effects import Arg, Step
from ftctl.steps.query import (
    FormatCache,
    IndexFormat,
    SearchHit,
    SearchResult,
    VectorFormat,
    is_blob_size_error,
)

log = get_logger("ftctl.query")

T = TypeVar("T")

DEFAULT_MAX_AGE = 5.0
"""Seconds a read format is used before ``FT.INFO`` is asked again. It bounds how long after
a cut-over a writer may still encode documents in the old datatype, and a query the old
way where the server cannot tell (same-width changes: float16 ↔ bfloat16, int8 ↔ uint8)."""

Quantization = Mapping[str, QuantizationParams | Mapping[str, Any]]
"""Quantization parameters by vector field (attribute name): :class:`QuantizationParams`, or
their fields as a mapping (``{"scheme": "symmetric", "scale": 0.0123}``, as a plan or a
JSON/YAML configuration holds them)."""


def quantization_params(
    plan: MigrationPlan | str | os.PathLike[str],
) -> dict[str, QuantizationParams]:
    """The quantization parameters of a plan's int8/uint8 target fields, by attribute name.

    ``plan``: a :class:`~ftctl.plan.models.MigrationPlan` or the path of its YAML file. A
    plan that quantizes nothing gives ``{}``.
    """
    loaded = plan if isinstance(plan, MigrationPlan) else load_plan(Path(plan))
    return {
        change.field: change.params
        for change in loaded.vector_changes
        if change.params is not None and change.target_datatype.lower() in INTEGER_DATATYPES
    }


def _quantization(given: Quantization | None) -> dict[str, QuantizationParams]:
    out: dict[str, QuantizationParams] = {}
    for field, params in (given or {}).items():
        try:
            out[field] = msgspec.convert(params, QuantizationParams, from_attributes=True)
        except msgspec.ValidationError as exc:
            raise UsageError(
                f"quantization parameters of field '{field}' do not parse: {exc}",
                "give scheme (symmetric | affine), scale and zero_point as the plan has them",
            ) from None
    return out


class _Core:
    """What both encoders share: the name, the cache, the parameters, the clock."""

    def __init__(
        self,
        name: str,
        quantization: Quantization | None,
        max_age: float,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.cache = FormatCache(name, max_age=max_age)
        self.quantization = _quantization(quantization)
        self.clock = clock
        self._seen: str | None = None

    def seen(self, fmt: IndexFormat | None) -> None:
        """Log when ``fmt`` is of another index than the one last seen behind the name."""
        if fmt is not None and fmt.index != self._seen:
            if self._seen is not None:
                log.info(
                    "the index behind the name changed",
                    public_name=self.name,
                    previous=self._seen,
                    index=fmt.index,
                    datatypes={v.attribute: v.datatype for v in fmt.vectors.values()},
                )
            self._seen = fmt.index

    def search(self, field: str, vector: npt.ArrayLike, **options: Any) -> Step[SearchResult]:
        """The KNN search step both encoders run (see :meth:`QueryEncoder.search`)."""
        result = yield from query.search(
            self.cache, self.clock(), field, vector, self.quantization, **options
        )
        self.seen(self.cache.last)
        return result


class QueryEncoder:
    """Encodes query and document vectors for whatever index a public name serves now.

    ``name``: the index or alias the application queries. ``redis_client=`` is used as it
    is and left open; otherwise a client is opened for ``redis_url`` (default
    ``$REDIS_URL``, then ``redis://localhost:6379``) and closed by :meth:`close`.
    ``quantization``: parameters of int8/uint8 fields (see :func:`quantization_params`).
    ``max_age``: seconds a read format is used (0: ``FT.INFO`` before every call).
    ``clock``: monotonic seconds (tests pass a fake one).

    Safe to share between threads: each call runs on a connection of the client's pool.
    """

    def __init__(
        self,
        name: str,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        quantization: Quantization | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = _Core(name, quantization, max_age, clock)
        self._owned = redis_client is None
        self._client = redis_client if redis_client is not None else connect(redis_url)

    @property
    def name(self) -> str:
        return self._core.name

    def _run(self, step: Step[T]) -> T:
        # A driver per call: a driver sends one batch at a time, the pool serves many.
        return SyncDriver(self._client).run(step)

    def format(self) -> IndexFormat:
        """The vector fields of the index behind the name (cached up to ``max_age``)."""
        core = self._core
        fmt = core.cache.cached(core.clock())
        if fmt is None:
            fmt = self._run(core.cache.current(core.clock()))
        core.seen(fmt)
        return fmt

    def refresh(self) -> IndexFormat:
        """Read the index behind the name now (after an application's own query met the
        blob-size error, see :func:`is_blob_size_error`)."""
        core = self._core
        fmt = self._run(core.cache.reload(core.clock()))
        core.seen(fmt)
        return fmt

    def encode(self, field: str, vector: npt.ArrayLike) -> bytes:
        """The query blob of ``vector`` (float values) for ``field`` (its attribute name) of
        the index behind the name: its datatype, little-endian; int8/uint8 quantized with the
        encoder's parameters."""
        return query.encode_vector(self.format(), field, vector, self._core.quantization)

    def encode_document_vector(self, field: str, vector: npt.ArrayLike) -> bytes:
        """The bytes a HASH document's ``field`` must hold for the index behind the name.

        Before a cut-over that is the old datatype, after it the new one (within
        ``max_age``). JSON indexes are refused: their documents hold arrays of numbers.
        """
        return query.encode_document_vector(self.format(), field, vector, self._core.quantization)

    def search(
        self,
        field: str,
        vector: npt.ArrayLike,
        *,
        k: int = 10,
        filter: str = "*",
        return_fields: Sequence[str] = (),
        distance_field: str = "vector_distance",
        params: Mapping[str, Arg] | None = None,
        dialect: int = 2,
    ) -> SearchResult:
        """The ``k`` nearest documents to ``vector`` through the name (KNN ``FT.SEARCH``).

        ``filter``: a query the KNN runs on (default ``*``); ``params``: further ``PARAMS``
        it refers to; ``return_fields``: fields returned besides the distance. When the
        server refuses the blob's size, the index behind the name is read again and the
        search retried once (``SearchResult.retried``). Other errors raise
        :class:`~ftctl.errors.RedisCommandError`.
        """
        return self._run(
            self._core.search(
                field, vector, k=k, filter=filter, return_fields=return_fields,
                distance_field=distance_field, params=params, dialect=dialect,
            )
        )  # fmt: skip

    def close(self) -> None:
        """Close the client the encoder opened (a caller's client stays open)."""
        if self._owned:
            self._client.close()

    def __enter__(self) -> QueryEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncQueryEncoder:
    """:class:`QueryEncoder` for asyncio: the same arguments, awaited methods.

    A client for ``redis_url`` is opened on first use and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        name: str,
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        quantization: Quantization | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = _Core(name, quantization, max_age, clock)
        self._owned = redis_client is None
        self._client = redis_client
        self._url = redis_url
        self._connecting = asyncio.Lock()

    @property
    def name(self) -> str:
        return self._core.name

    async def _connected(self) -> redis.asyncio.Redis:
        if self._client is None:
            async with self._connecting:
                if self._client is None:
                    self._client = await async_connect(self._url)
        return self._client

    async def _run(self, step: Step[T]) -> T:
        return await AsyncDriver(await self._connected()).run(step)

    async def format(self) -> IndexFormat:
        """As :meth:`QueryEncoder.format`."""
        core = self._core
        fmt = core.cache.cached(core.clock())
        if fmt is None:
            fmt = await self._run(core.cache.current(core.clock()))
        core.seen(fmt)
        return fmt

    async def refresh(self) -> IndexFormat:
        """As :meth:`QueryEncoder.refresh`."""
        core = self._core
        fmt = await self._run(core.cache.reload(core.clock()))
        core.seen(fmt)
        return fmt

    async def encode(self, field: str, vector: npt.ArrayLike) -> bytes:
        """As :meth:`QueryEncoder.encode`."""
        return query.encode_vector(await self.format(), field, vector, self._core.quantization)

    async def encode_document_vector(self, field: str, vector: npt.ArrayLike) -> bytes:
        """As :meth:`QueryEncoder.encode_document_vector`."""
        return query.encode_document_vector(
            await self.format(), field, vector, self._core.quantization
        )

    async def search(
        self,
        field: str,
        vector: npt.ArrayLike,
        *,
        k: int = 10,
        filter: str = "*",
        return_fields: Sequence[str] = (),
        distance_field: str = "vector_distance",
        params: Mapping[str, Arg] | None = None,
        dialect: int = 2,
    ) -> SearchResult:
        """As :meth:`QueryEncoder.search`."""
        return await self._run(
            self._core.search(
                field, vector, k=k, filter=filter, return_fields=return_fields,
                distance_field=distance_field, params=params, dialect=dialect,
            )
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close the client the encoder opened (a caller's client stays open)."""
        if self._owned and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> AsyncQueryEncoder:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "DEFAULT_MAX_AGE",
    "AsyncQueryEncoder",
    "IndexFormat",
    "Quantization",
    "QueryEncoder",
    "SearchHit",
    "SearchResult",
    "VectorFormat",
    "is_blob_size_error",
    "quantization_params",
]
