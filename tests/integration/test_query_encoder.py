"""QueryEncoder / AsyncQueryEncoder on the real server, through a simulated online cut-over.

The setting is what an online float32 → float16 migration of a HASH vector looks like to an
application: the public name ``docs`` is an alias of ``docs__a`` (FLOAT32, field ``emb``);
the shadow ``docs__b`` indexes the same documents' vectors as FLOAT16 from a temporary field
(``emb__ftctl_t AS emb``); the cut-over is ``FT.ALIASUPDATE docs docs__b``; after the
contract, ``docs__f`` reads ``emb`` itself as FLOAT16. The encoders' clocks are fake, so
what follows the cut-over is the blob-size error or an explicit refresh, never the TTL,
unless a test moves the clock.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import redis
import redis.asyncio

from ftctl import AsyncQueryEncoder, QueryEncoder, is_blob_size_error
from ftctl.plan.codecs import encode

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DOCS = 60
DIMS = 384
TARGET = 7
"""The document the query vector is a slightly moved copy of: the nearest one in every index."""

WIRE = {"FLOAT32": "<f4", "FLOAT16": "<f2"}


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vectors() -> npt.NDArray[np.float32]:
    """Real sentence embeddings (MiniLM, 384 dims), one per document."""
    loaded: npt.NDArray[np.float32] = np.load(FIXTURES / "embeddings" / "minilm-384-3000.npy")
    return loaded[:DOCS].astype(np.float32)


@pytest.fixture
def query(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A query vector close to document TARGET's (not equal to it)."""
    noise = np.random.default_rng(7).normal(0.0, 0.002, DIMS).astype(np.float32)
    moved: npt.NDArray[np.float32] = vectors[TARGET] + noise
    return moved


def _create(r: redis.Redis, index: str, field: str, datatype: str) -> None:
    attribute = ["emb"] if field == "emb" else [field, "AS", "emb"]
    r.execute_command(
        "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, "doc:", "SCHEMA", "title", "TEXT",
        *attribute, "VECTOR", "FLAT", 6, "TYPE", datatype, "DIM", DIMS, "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip


def _info(r: redis.Redis, index: str) -> dict[bytes, object]:
    info: dict[bytes, object] = r.execute_command("FT.INFO", index)
    return info


def _wait(r: redis.Redis, index: str) -> None:
    deadline = time.monotonic() + 30
    while int(_info(r, index)[b"indexing"]) and time.monotonic() < deadline:  # type: ignore[call-overload]
        time.sleep(0.02)


def _count(r: redis.Redis, index: str, key: str) -> int:
    reply = r.execute_command("FT.SEARCH", index, "*", "INKEYS", 1, key, "NOCONTENT")
    return int(reply[b"total_results"])


def _failures(r: redis.Redis, index: str) -> int:
    return int(_info(r, index)[b"hash_indexing_failures"])  # type: ignore[call-overload]


def _write_field(r: redis.Redis, field: str, vectors: np.ndarray, datatype: str) -> None:
    pipe = r.pipeline(transaction=False)
    for i, vector in enumerate(vectors):
        pipe.hset(f"doc:{i}", field, encode(vector[None, :], datatype))
    pipe.execute()


def _serve(
    r: redis.Redis, vectors: np.ndarray, index: str = "docs__a", dt: str = "FLOAT32"
) -> None:
    """The documents, ``index`` on their ``emb`` field, and the alias ``docs`` on it."""
    pipe = r.pipeline(transaction=False)
    for i in range(len(vectors)):
        pipe.hset(f"doc:{i}", "title", f"document {i}")
    pipe.execute()
    _write_field(r, "emb", vectors, dt.lower())
    _create(r, index, "emb", dt)
    _wait(r, index)
    r.execute_command("FT.ALIASADD", "docs", index)


def _shadow(r: redis.Redis, vectors: np.ndarray, index: str, field: str, dt: str) -> None:
    """What expand builds before a cut-over: the vectors converted into a temporary field,
    indexed as ``emb`` by a shadow index; the alias does not move yet."""
    _write_field(r, field, vectors, dt.lower())
    _create(r, index, field, dt)
    _wait(r, index)


def _cut_over(r: redis.Redis, index: str) -> None:
    r.execute_command("FT.ALIASUPDATE", "docs", index)


def _contract(r: redis.Redis, vectors: np.ndarray) -> None:
    """What the rest of the migration leaves: ``emb`` rewritten as float16 in place, read by
    the final index ``docs__f``, which takes over the alias."""
    _write_field(r, "emb", vectors, "float16")
    _create(r, "docs__f", "emb", "FLOAT16")
    _wait(r, "docs__f")
    _cut_over(r, "docs__f")


def test_sync_search_follows_the_alias_through_a_cut_over_and_back(
    r: redis.Redis,
    vectors: np.ndarray,
    query: np.ndarray,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before the cut-over the encoder sends float32 (a float16 blob is refused) and finds
    the nearest document. The
    first search after ``FT.ALIASUPDATE docs docs__b`` meets the blob-size error, reads the
    index behind the name again and retries with float16: the caller gets the same nearest
    document and no error. A rollback (the alias back on docs__a) is followed the same way."""
    caplog.set_level(logging.INFO, logger="ftctl.query")
    _serve(r, vectors)
    with pytest.raises(redis.ResponseError) as early:
        # what an application that switched to float16 before the cut-over gets
        r.execute_command(
            "FT.SEARCH", "docs", "*=>[KNN 3 @emb $v]", "PARAMS", 2, "v",
            query.astype("<f2").tobytes(), "DIALECT", 2,
        )  # fmt: skip
    assert is_blob_size_error(early.value)
    encoder = QueryEncoder("docs", redis_client=r, clock=FakeClock())
    assert encoder.encode("emb", query) == query.astype("<f4").tobytes()
    before = encoder.search("emb", query, k=3, return_fields=["title"])
    assert (before.index, before.datatype, before.retried) == ("docs__a", "float32", False)
    assert before.hits[0].id == f"doc:{TARGET}"
    assert before.hits[0].fields == {"title": f"document {TARGET}".encode()}
    assert before.total == 3 and before.hits[0].distance < before.hits[1].distance
    only = encoder.search("emb", query, k=3, filter="@title:$n", params={"n": "12"})
    assert [hit.id for hit in only.hits] == ["doc:12"]

    _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
    _cut_over(r, "docs__b")
    with pytest.raises(redis.ResponseError) as stale:
        # what an application that kept encoding float32 gets from now on
        r.execute_command(
            "FT.SEARCH", "docs", "*=>[KNN 3 @emb $v]", "PARAMS", 2, "v",
            query.astype("<f4").tobytes(), "DIALECT", 2,
        )  # fmt: skip
    assert is_blob_size_error(stale.value)
    assert "blob size (1536) does not match index's expected size (768)" in str(stale.value)

    after = encoder.search("emb", query, k=3)
    assert (after.index, after.datatype, after.retried) == ("docs__b", "float16", True)
    assert after.hits[0].id == f"doc:{TARGET}"
    assert encoder.encode("emb", query) == query.astype("<f2").tobytes()
    assert encoder.search("emb", query, k=1).retried is False
    assert any(
        rec.getMessage() == "the index behind the name changed"
        and getattr(rec, "index", None) == "docs__b"
        for rec in caplog.records
    )

    _cut_over(r, "docs__a")
    back = encoder.search("emb", query, k=3)
    assert (back.index, back.datatype, back.retried) == ("docs__a", "float32", True)
    assert back.hits[0].id == f"doc:{TARGET}"
    encoder.close()
    assert r.ping()  # the caller's client stays open


async def test_async_search_follows_the_alias_through_a_cut_over(
    r: redis.Redis, redis_url: str, vectors: np.ndarray, query: np.ndarray
) -> None:
    """The asyncio encoder, given a URL or a redis.asyncio client, behaves as the sync one:
    float32 before the cut-over, one transparent retry as float16 after it. ``async with``
    closes the client it opened from the URL, never the caller's."""
    _serve(r, vectors)
    client = redis.asyncio.Redis.from_url(redis_url, protocol=3)
    given = AsyncQueryEncoder("docs", redis_client=client, clock=FakeClock())
    connections = len(r.client_list())
    async with AsyncQueryEncoder("docs", redis_url=redis_url, clock=FakeClock()) as owned:
        for encoder in (given, owned):
            assert await encoder.encode("emb", query) == query.astype("<f4").tobytes()
            before = await encoder.search("emb", query, k=3)
            assert (before.datatype, before.hits[0].id) == ("float32", f"doc:{TARGET}")
        _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
        _cut_over(r, "docs__b")
        for encoder in (given, owned):
            after = await encoder.search("emb", query, k=3)
            assert (after.index, after.datatype, after.retried) == ("docs__b", "float16", True)
            assert after.hits[0].id == f"doc:{TARGET}"
            assert await encoder.encode("emb", query) == query.astype("<f2").tobytes()
        assert len(r.client_list()) > connections
    time.sleep(0.05)  # the server notices the closed connection
    assert len(r.client_list()) == connections + 1  # the caller's client only
    await given.aclose()
    assert await client.ping()  # the caller's client stays open
    await client.aclose()


def test_an_applications_own_query_refreshes_on_the_blob_size_error(
    r: redis.Redis, redis_url: str, vectors: np.ndarray, query: np.ndarray
) -> None:
    """An application that builds its own FT.SEARCH uses encode(); on the blob-size error
    (is_blob_size_error) it calls refresh() and sends the vector encoded again."""
    _serve(r, vectors)

    def knn(blob: bytes) -> list[bytes]:
        reply = r.execute_command(
            "FT.SEARCH", "docs", "*=>[KNN 1 @emb $v]", "PARAMS", 2, "v", blob,
            "NOCONTENT", "DIALECT", 2,
        )  # fmt: skip
        return [hit[b"id"] for hit in reply[b"results"]]

    with QueryEncoder("docs", redis_url=redis_url, clock=FakeClock()) as encoder:
        assert knn(encoder.encode("emb", query)) == [f"doc:{TARGET}".encode()]
        _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
        _cut_over(r, "docs__b")
        try:
            knn(encoder.encode("emb", query))
            raise AssertionError("a float32 blob was accepted by the FLOAT16 index")
        except redis.ResponseError as error:
            assert is_blob_size_error(error)
            assert encoder.refresh().index == "docs__b"
        assert knn(encoder.encode("emb", query)) == [f"doc:{TARGET}".encode()]


def test_a_same_width_change_is_followed_after_max_age(
    r: redis.Redis, vectors: np.ndarray, query: np.ndarray
) -> None:
    """float16 → bfloat16 keeps the blob's size, so the server raises nothing and the
    encoder keeps sending float16 until its format is max_age old; then it reads the index
    behind the name and sends bfloat16."""
    _serve(r, vectors, "docs__b", "FLOAT16")
    clock = FakeClock()
    encoder = QueryEncoder("docs", redis_client=r, clock=clock)  # max_age: 5 s by default
    assert encoder.search("emb", query, k=1).datatype == "float16"
    _shadow(r, vectors, "docs__c", "emb__ftctl_c", "BFLOAT16")
    _cut_over(r, "docs__c")

    clock.now += 4.9
    stale = encoder.search("emb", query, k=1)
    assert (stale.index, stale.datatype, stale.retried) == ("docs__b", "float16", False)
    clock.now += 0.1
    fresh = encoder.search("emb", query, k=1)
    assert (fresh.index, fresh.datatype, fresh.retried) == ("docs__c", "bfloat16", False)
    assert fresh.hits[0].id == f"doc:{TARGET}"


def test_writers_switch_between_the_cut_over_and_the_end_of_the_contract(
    r: redis.Redis, vectors: np.ndarray
) -> None:
    """encode_document_vector gives the old datatype while the old index serves and the new
    one once the encoder has seen the cut-over (max_age later, with no query needed). A
    float16 write before the cut-over is an indexing failure of the serving FLOAT32 index;
    a float32 write after the contract is one of the final FLOAT16 index: such a document
    cannot be found until it is written again in the right format."""
    _serve(r, vectors)
    clock = FakeClock()
    encoder = QueryEncoder("docs", redis_client=r, max_age=5.0, clock=clock)
    vector = vectors[3]
    assert encoder.encode_document_vector("emb", vector) == vector.astype("<f4").tobytes()
    r.hset("doc:new", "emb", encoder.encode_document_vector("emb", vector))
    assert _count(r, "docs", "doc:new") == 1

    failed = _failures(r, "docs__a")
    r.hset("doc:early", "emb", vector.astype("<f2").tobytes())  # switched too early
    assert _count(r, "docs", "doc:early") == 0
    assert _failures(r, "docs__a") == failed + 1

    _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
    _cut_over(r, "docs__b")
    assert encoder.encode_document_vector("emb", vector) == vector.astype("<f4").tobytes()
    clock.now += 5.0
    assert encoder.encode_document_vector("emb", vector) == vector.astype("<f2").tobytes()

    _contract(r, vectors)
    failed = _failures(r, "docs__f")
    r.hset("doc:late", "emb", vector.astype("<f4").tobytes())  # never switched
    r.hset("doc:switched", "emb", encoder.encode_document_vector("emb", vector))
    assert _count(r, "docs", "doc:late") == 0
    assert _failures(r, "docs__f") == failed + 1
    r.hset("doc:late", "emb", encoder.encode_document_vector("emb", vector))  # written again
    assert _count(r, "docs", "doc:late") == 1
    assert _count(r, "docs", "doc:switched") == 1


@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
def test_any_callers_client_works_resp2_or_resp3_raw_or_decoded(
    r: redis.Redis,
    redis_url: str,
    vectors: np.ndarray,
    query: np.ndarray,
    protocol: int,
    decode: bool,
) -> None:
    """The caller's client may speak RESP2 or RESP3 and decode replies or not: the encoder
    reads the index behind the name and follows the cut-over the same way; returned fields
    come as the client gives them."""
    _serve(r, vectors)
    client = redis.Redis.from_url(redis_url, protocol=protocol, decode_responses=decode)
    encoder = QueryEncoder("docs", redis_client=client, clock=FakeClock())
    title = f"document {TARGET}"
    before = encoder.search("emb", query, k=2, return_fields=["title"])
    assert before.hits[0].id == f"doc:{TARGET}" and before.total == 2
    assert before.hits[0].fields == {"title": title if decode else title.encode()}
    _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
    _cut_over(r, "docs__b")
    after = encoder.search("emb", query, k=2)
    assert (after.datatype, after.retried, after.hits[0].id) == ("float16", True, f"doc:{TARGET}")
    client.close()


def test_one_encoder_serves_many_threads_through_a_cut_over(
    r: redis.Redis, vectors: np.ndarray, query: np.ndarray
) -> None:
    """Threads sharing one encoder (each call on a connection of the client's pool) all get
    their result right after a cut-over, whichever of them reads the new index first."""
    _serve(r, vectors)
    encoder = QueryEncoder("docs", redis_client=r, clock=FakeClock())
    encoder.search("emb", query, k=1)
    _shadow(r, vectors, "docs__b", "emb__ftctl_t", "FLOAT16")
    _cut_over(r, "docs__b")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: encoder.search("emb", query, k=1), range(32)))
    assert {(x.index, x.datatype, x.hits[0].id) for x in results} == {
        ("docs__b", "float16", f"doc:{TARGET}")
    }
    assert any(x.retried for x in results)
