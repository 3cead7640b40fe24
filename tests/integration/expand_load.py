"""Issue 15's load scenarios, shared by ``test_expand_load.py`` and ``bench/online.py``.

An online ``expand`` migration (a HASH vector's datatype, a field rename, a prefix change)
runs while a :class:`Reader` queries the public name ``docs`` in a loop and a
:class:`Writer` creates, updates and deletes documents the way the README tells an
application to. Everything here is deterministic from the :class:`Size` and seeds, so
:func:`load` gives a drop_recreate run the same initial data, and :func:`snapshot` /
:func:`definition` / :func:`history` read what the two runs leave for comparison.

The data: ``doc:<i>`` holds ``title`` (TEXT) ``"doc <i> steady"`` for odd ``i`` and
``"doc <i> moving"`` for even ``i``, and ``emb`` (a float32 vector). The writer touches
only moving documents and the ones it creates, so a query for :data:`STEADY` must always
count every odd document, and ``*`` must count what the writer's counters allow.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import redis

from ftctl import QueryEncoder
from ftctl.plan.codecs import encode
from ftctl.plan.pacing import Pacing

INDEX = "docs"
"""The public name: the reader queries it, the writer's encoder follows it."""
OLD_PREFIX, NEW_PREFIX = "doc:", "item:"
STEADY = "steady"
"""Title word of the documents the writer never touches (odd ``i``)."""
PACING = Pacing(max_cpu=1.0)
"""The pacing of the runs under load: the latency target stays on, the CPU ceiling is off.
The reader is a tight loop that alone keeps the server's main thread over the default
``--max-cpu`` at 20k x 128 (82-91% here), where the ceiling slows every pass over the
documents to ten per 2 s; the ceiling itself is tested in ``test_online_pacing.py``."""
ROLLBACK_INDEX = f"{INDEX}__ftctl_rb"
"""How the indexes a rollback cuts back to are named (``ftctl.steps.tables.rollback_name``)."""
K = 10
"""Neighbours a KNN query asks for: always fewer than the documents, so every answer has K."""


@dataclass(frozen=True, slots=True)
class Size:
    docs: int
    dims: int
    algorithm: Literal["HNSW", "FLAT"] = "HNSW"

    @classmethod
    def parse(cls, text: str) -> Size:
        """``20000x128`` or ``flat:100000x384`` (HNSW unless said)."""
        algorithm, _, shape = text.rpartition(":")
        docs, dims = shape.lower().split("x")
        return cls(int(docs), int(dims), "FLAT" if algorithm.lower() == "flat" else "HNSW")

    def __str__(self) -> str:
        return f"{self.algorithm} {self.docs:,} x {self.dims}"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A change, and the names and format the final layout has."""

    name: str
    storage: Literal["hash", "json"]
    patch: dict[str, object]
    datatype: str = "float32"
    """The vector's final datatype (what a HASH document's ``emb`` holds at the end)."""
    title: str = "title"
    """The text field's final name."""
    prefix: str = OLD_PREFIX
    """The final key prefix."""

    @property
    def renamed(self) -> bool:
        return self.title != "title"


_RENAME = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "float16",
            "hash",
            {"changes": {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}},
            datatype="float16",
        ),
        Scenario("rename", "hash", {"changes": _RENAME}, title="headline"),
        Scenario(
            "prefix", "hash", {"changes": {"index": {"prefix": NEW_PREFIX}}}, prefix=NEW_PREFIX
        ),
        Scenario("json_rename", "json", {"changes": _RENAME}, title="headline"),
    )
}


# --- the initial data ----------------------------------------------------------------------


def title_of(i: int, version: int = 0) -> str:
    """The initial title of document ``i`` (version 0), or the one the writer gives it."""
    word = STEADY if i % 2 and not version else "moving"
    return f"doc {i} {word}" + (f" v{version}" if version else "")


def steady_count(size: Size) -> int:
    return size.docs // 2


def _json_doc(title_field: str, title: str, vector: npt.NDArray[np.float32]) -> str:
    return json.dumps({title_field: title, "emb": [float(x) for x in vector]})


def load(r: redis.Redis, scenario: Scenario, size: Size, *, seed: int = 7) -> None:
    """The initial documents and the index ``docs`` on them (deterministic from the seed)."""
    rng = np.random.default_rng(seed)
    pipe = r.pipeline(transaction=False)
    for start in range(0, size.docs, 2000):
        count = min(2000, size.docs - start)
        vectors = rng.standard_normal((count, size.dims)).astype(np.float32)
        for i, vector in enumerate(vectors, start):
            key = f"{OLD_PREFIX}{i}"
            if scenario.storage == "json":
                pipe.execute_command("JSON.SET", key, "$", _json_doc("title", title_of(i), vector))
            else:
                pipe.hset(key, mapping={"title": title_of(i), "emb": vector.tobytes()})
        pipe.execute()
    params = ["TYPE", "FLOAT32", "DIM", str(size.dims), "DISTANCE_METRIC", "COSINE"]
    if scenario.storage == "json":
        on, schema = "JSON", ["$.title", "AS", "title", "TEXT", "$.emb", "AS", "emb"]
    else:
        on, schema = "HASH", ["title", "TEXT", "emb"]
    r.execute_command(
        "FT.CREATE", INDEX, "ON", on, "PREFIX", "1", OLD_PREFIX, "SCHEMA", *schema,
        "VECTOR", size.algorithm, str(len(params)), *params,
    )  # fmt: skip
    wait_indexed(r, INDEX)


def wait_indexed(r: redis.Redis, name: str) -> None:
    while True:
        info = r.execute_command("FT.INFO", name)
        if int(info[b"indexing"]) == 0 and float(info[b"percent_indexed"]) >= 1.0:
            return
        time.sleep(0.05)


# --- the writer ----------------------------------------------------------------------------


@dataclass
class Counts:
    """What the writer has started and finished (the reader bounds ``*`` with them)."""

    created_started: int = 0
    created_done: int = 0
    deleted_started: int = 0
    deleted_done: int = 0


@dataclass
class Writer:
    """Creates, updates and deletes moving documents as the README's application does.

    Before the cut-over it writes the old layout (float32, ``title``, ``doc:``). It notices
    the cut-over through a :class:`QueryEncoder` on the public name (the index behind it
    changed; ``max_age`` bounds how late), then writes :attr:`legacy_burst` more updates in
    the old layout (an instance of the application that has not switched yet: ftctl must
    convert them) and switches to the new layout:

    - datatype: ``emb`` from ``encode_document_vector`` (float16 once the encoder saw the
      new index);
    - field rename: the new field name, and the old one removed in the same transaction
      (HASH: ``MULTI HSET … HDEL title EXEC``; JSON: the whole document replaced);
    - prefix change: the whole document under the new prefix and the old key deleted in the
      same transaction; a delete removes both keys, before and after the cut-over. Once
      :attr:`dual_create` is set (the run waits at the operator gate: the preflight that
      wants no key under the new prefix has passed), a new document is written under both
      prefixes in one transaction until the switch: one created through the old prefix
      alone in the instant of the swap would be missing for the milliseconds until ftctl
      moves it, and the reader would see that. Once :attr:`dual_back` is set (a rollback
      starts) every write goes under both prefixes until the writer switched back.

    ``record`` holds each touched document's last write (``None``: deleted): the final
    layout must hold exactly that, converted.

    A rollback moves the public name back (to an index named :data:`ROLLBACK_INDEX` …): the
    writer notices that too and switches back the same way, mirrored (README, "rolling
    back"): :attr:`legacy_burst` more updates in the new layout (an instance that has not
    switched back yet: ftctl must convert them back), then the old layout, removing the
    new one in the same transaction (the new field name, the key under the new prefix).
    ``formats`` holds the datatype each touched document's ``emb`` was last written in.
    """

    url: str
    scenario: Scenario
    size: Size
    pause: float = 0.003
    legacy_burst: int = 20
    max_age: float = 0.05
    seed: int = 11
    counts: Counts = field(default_factory=Counts)
    record: dict[int, tuple[str, npt.NDArray[np.float32]] | None] = field(default_factory=dict)
    switched_at: float | None = None
    """``time.time()`` when the writer noticed the cut-over."""
    switched_back_at: float | None = None
    """``time.time()`` when the writer noticed a rollback's cut-back."""
    formats: dict[int, str] = field(default_factory=dict)
    written_back: set[int] = field(default_factory=set)
    last_at: dict[int, float] = field(default_factory=dict)
    """``time.time()`` when each document's last write was acknowledged."""
    """Documents last written after the writer noticed the cut-back."""
    legacy_after_cutover: int = 0
    legacy_after_cutback: int = 0
    dual_create: bool = False
    dual_back: bool = False
    """Set when a rollback of a prefix change starts: until the writer switches back, each
    write of the new layout also writes the document under the old prefix, in the same
    transaction, instead of deleting it there (README); a delete removes both keys."""
    written_at: list[float] = field(default_factory=list)
    """``time.time()`` when each write was acknowledged."""
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, stop: threading.Event) -> None:
        client = redis.Redis.from_url(self.url, protocol=3)
        encoder = QueryEncoder(INDEX, redis_client=client, max_age=self.max_age)
        rng = np.random.default_rng(self.seed)
        moving = list(range(0, self.size.docs, 2))
        next_id, version, source, burst = self.size.docs, 1, None, 0
        try:
            while not stop.is_set():
                try:
                    behind = encoder.format().index
                except Exception as exc:  # drop_recreate: the name is gone a while
                    self.errors.append(f"FT.INFO: {exc}")
                    time.sleep(self.pause)
                    continue
                source = source or behind
                back = behind.startswith(ROLLBACK_INDEX)
                if behind != source and self.switched_at is None and not back:
                    self.switched_at, burst = time.time(), self.legacy_burst
                if back and self.switched_back_at is None:
                    self.switched_back_at, burst = time.time(), self.legacy_burst
                if self.switched_back_at is not None:
                    legacy = burst > 0  # still the new layout, until the burst is written
                else:
                    legacy = self.switched_at is None or burst > 0
                op = rng.random()
                vector = rng.standard_normal(self.size.dims).astype(np.float32)
                try:
                    if burst > 0 or (op < 0.45 and moving):
                        i = moving[int(rng.integers(len(moving)))]
                        self._put(client, encoder, i, title_of(i, version), vector, legacy)
                        if self.switched_back_at is not None:
                            self.legacy_after_cutback += burst > 0
                        else:
                            self.legacy_after_cutover += legacy and self.switched_at is not None
                        burst = max(burst - 1, 0)
                    elif op < 0.8 or not moving:
                        i, next_id = next_id, next_id + 1
                        with self.lock:
                            self.counts.created_started += 1
                        self._put(
                            client, encoder, i, title_of(i, version), vector, legacy, create=True
                        )
                        moving.append(i)
                        with self.lock:
                            self.counts.created_done += 1
                    else:
                        i = moving.pop(int(rng.integers(len(moving))))
                        with self.lock:
                            self.counts.deleted_started += 1
                        client.delete(*self._names(i))
                        self.record[i] = None
                        with self.lock:
                            self.counts.deleted_done += 1
                    self.written_at.append(time.time())
                    self.last_at[i] = self.written_at[-1]
                except redis.RedisError as exc:
                    self.errors.append(f"write: {exc}")
                version += 1
                time.sleep(self.pause)
        finally:
            client.close()

    def _names(self, i: int) -> list[str]:
        """Every name document ``i`` may have: deletes remove all of them."""
        return list(dict.fromkeys([f"{OLD_PREFIX}{i}", f"{self.scenario.prefix}{i}"]))

    def _put(
        self,
        client: redis.Redis,
        encoder: QueryEncoder,
        i: int,
        title: str,
        vector: npt.NDArray[np.float32],
        legacy: bool,
        *,
        create: bool = False,
    ) -> None:
        scenario, old_key = self.scenario, f"{OLD_PREFIX}{i}"
        if self.switched_back_at is not None:
            self._put_back(client, i, title, vector, old_layout=not legacy)
            return
        key = old_key if legacy else f"{scenario.prefix}{i}"
        title_field = "title" if legacy else scenario.title
        self.record[i] = (title, vector)
        if scenario.storage == "json":
            client.execute_command("JSON.SET", key, "$", _json_doc(title_field, title, vector))
            return
        emb = vector.tobytes() if legacy else encoder.encode_document_vector("emb", vector)
        self.formats[i] = "float32" if legacy else scenario.datatype
        if legacy:
            both = create and self.dual_create and self.switched_at is None
            pipe = client.pipeline(transaction=True)
            for name in [key, f"{scenario.prefix}{i}"] if both else [key]:
                pipe.hset(name, mapping={"title": title, "emb": emb})
            pipe.execute()
            return
        pipe = client.pipeline(transaction=True)
        if key != old_key and self.dual_back:
            pipe.hset(old_key, mapping={title_field: title, "emb": emb})
        elif key != old_key:
            pipe.delete(old_key)
        pipe.hset(key, mapping={title_field: title, "emb": emb})
        if title_field != "title":
            pipe.hdel(key, "title")
        pipe.execute()

    def _put_back(
        self,
        client: redis.Redis,
        i: int,
        title: str,
        vector: npt.NDArray[np.float32],
        *,
        old_layout: bool,
    ) -> None:
        """A write once a rollback moved the name back: the new layout (an instance that has
        not switched back yet, its own float16 encoding), else the old layout with the new
        one removed in the same transaction (HASH)."""
        scenario, old_key, new_key = self.scenario, f"{OLD_PREFIX}{i}", f"{self.scenario.prefix}{i}"
        self.record[i] = (title, vector)
        self.written_back.add(i)
        if old_layout:
            key, title_field, datatype = old_key, "title", "float32"
            other_key, other_field = new_key, scenario.title
        else:
            key, title_field, datatype = new_key, scenario.title, scenario.datatype
            other_key, other_field = old_key, "title"
        if scenario.storage == "json":
            client.execute_command("JSON.SET", key, "$", _json_doc(title_field, title, vector))
            return
        self.formats[i] = datatype
        mapping = {title_field: title, "emb": encode(vector[None, :], datatype)}
        pipe = client.pipeline(transaction=True)
        if other_key != key and self.dual_back and not old_layout:
            pipe.hset(other_key, mapping=mapping)
        elif other_key != key:
            pipe.delete(other_key)
        pipe.hset(key, mapping=mapping)
        if other_field != title_field:
            pipe.hdel(key, other_field)
        pipe.execute()

    def snapshot(self) -> Counts:
        with self.lock:
            return Counts(**vars(self.counts))


# --- the reader ----------------------------------------------------------------------------


@dataclass
class Reader:
    """Queries the public name in a loop: a KNN through :class:`QueryEncoder` (K hits), a
    text query ``@title:steady`` (every odd document) and ``*`` (between what the writer
    had surely done and what it may have done). Records each query's latency and every
    failed or incomplete answer."""

    url: str
    size: Size
    writer: Writer | None = None
    scenario: Scenario | None = None
    """A rename's text query names both the old and the new field (a union either index
    answers, as the README tells applications)."""
    seed: int = 5
    queries: int = 0
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, end, what) of each failed or incomplete query (``time.monotonic()``)."""
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {"knn": [], "text": [], "count": []}
    )

    def run(self, stop: threading.Event) -> None:
        client = redis.Redis.from_url(self.url, protocol=3)
        encoder = QueryEncoder(INDEX, redis_client=client)
        query = np.random.default_rng(self.seed).standard_normal(self.size.dims)
        steady = steady_count(self.size)
        text = f"@title:{STEADY}"
        if self.scenario is not None and self.scenario.renamed:
            text = f"(@title:{STEADY})|(@{self.scenario.title}:{STEADY})"
        try:
            while not stop.is_set():
                self._one("knn", lambda: self._knn(encoder, query))
                self._one("text", lambda: self._text(client, text, steady))
                self._one("count", lambda: self._count(client))
        finally:
            client.close()

    def _one(self, kind: str, query: Callable[[], str]) -> None:
        start = time.monotonic()
        try:
            problem = query()
        except Exception as exc:  # any error is a failed query, recorded
            problem = f"{type(exc).__name__}: {exc}"
        end = time.monotonic()
        self.queries += 1
        self.latencies[kind].append(end - start)
        if problem:
            self.failures.append((start, end, f"{kind}: {problem}"))

    @staticmethod
    def _knn(encoder: QueryEncoder, query: npt.NDArray[np.float64]) -> str:
        found = encoder.search("emb", query, k=K)
        return "" if len(found.hits) == K else f"{len(found.hits)} of {K} neighbours"

    @staticmethod
    def _text(client: redis.Redis, text: str, steady: int) -> str:
        reply = client.execute_command("FT.SEARCH", INDEX, text, "LIMIT", 0, 0, "DIALECT", 2)
        total = _total(reply)
        return "" if total == steady else f"{total} of {steady} '{STEADY}' documents"

    def _count(self, client: redis.Redis) -> str:
        before = self.writer.snapshot() if self.writer else Counts()
        total = _total(client.execute_command("FT.SEARCH", INDEX, "*", "LIMIT", 0, 0))
        after = self.writer.snapshot() if self.writer else Counts()
        base = self.size.docs
        low = base + before.created_done - after.deleted_started
        high = base + after.created_started - before.deleted_done
        return "" if low <= total <= high else f"{total} documents, expected {low}..{high}"

    def failing_span(self) -> float:
        """From the first failed or incomplete query to the end of the last (seconds): the
        window in which answers could not be trusted, however many came out right in it."""
        if not self.failures:
            return 0.0
        return max(end for _, end, _ in self.failures) - min(s for s, _, _ in self.failures)

    def downtime(self) -> float:
        """The longest interval covered by consecutive failed queries (seconds)."""
        longest, run_start, last_end = 0.0, None, None
        for start, end, _ in sorted(self.failures):
            if run_start is None or last_end is None or start - last_end > 0.05:
                run_start = start
            last_end = end
            longest = max(longest, end - run_start)
        return longest


def _total(reply: Any) -> int:
    return int(reply[b"total_results"])


@dataclass
class Running:
    """The reader and the writer of an :func:`under_load` block."""

    reader: Reader
    writer: Writer | None


@contextmanager
def under_load(
    url: str, scenario: Scenario, size: Size, *, write: bool = True
) -> Iterator[Running]:
    """A reader (and a writer, unless ``write`` is false) on threads of their own while the
    block runs, from 0.2 s before it to 0.2 s after."""
    writer = Writer(url, scenario, size) if write else None
    running = Running(Reader(url, size, writer, scenario), writer)
    stop = threading.Event()
    workers = [running.reader, *([writer] if writer else [])]
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    try:
        yield running
    finally:
        time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(30)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --- what a run leaves ---------------------------------------------------------------------


def documents(r: redis.Redis, storage: str) -> dict[str, Any]:
    """Every document key (under either prefix) → its fields (HASH) or its JSON value."""
    out: dict[str, Any] = {}
    for prefix in (OLD_PREFIX, NEW_PREFIX):
        keys = sorted(k.decode() for k in r.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            pipe = r.pipeline(transaction=False)
            for key in chunk:
                if storage == "json":
                    pipe.execute_command("JSON.GET", key, "$")
                else:
                    pipe.hgetall(key)
            for key, value in zip(chunk, pipe.execute(), strict=True):
                out[key] = json.loads(value)[0] if storage == "json" else value
    return out


def other_keys(r: redis.Redis) -> list[str]:
    """Keys that are not documents (ftctl's schema history, anything left behind)."""
    return sorted(
        k.decode()
        for k in r.scan_iter(count=1000)
        if not k.startswith((OLD_PREFIX.encode(), NEW_PREFIX.encode()))
    )


def definition(r: redis.Redis, name: str) -> dict[str, Any]:
    """FT.INFO's definition of the index behind ``name`` (its name and statistics left out)."""
    info = r.execute_command("FT.INFO", name)
    return {
        key.decode(): _plain(info[key])
        for key in (b"index_options", b"index_definition", b"attributes")
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def history(r: redis.Redis) -> dict[str, dict[str, Any]]:
    """ftctl's schema history records, by key."""
    out: dict[str, dict[str, Any]] = {}
    for key in r.scan_iter(match="ftctl:schema:*"):
        out[key.decode()] = json.loads(r.get(key) or b"{}")
    return out


def expected_document(scenario: Scenario, title: str, vector: npt.NDArray[np.float32]) -> Any:
    """What drop_recreate would make of a document the writer wrote (title, float vector);
    compare a JSON document read back through :func:`as_written`."""
    if scenario.storage == "json":
        return {scenario.title: title, "emb": vector.tolist()}
    return {
        scenario.title.encode(): title.encode(),
        b"emb": encode(vector[None, :], scenario.datatype),
    }


def as_written(storage: str, document: Any) -> Any:
    """A document as read back, its JSON vector at float32 precision: RedisJSON prints a
    double with fewer digits than it was written with (1e-16 off), so the float32 values
    the writer wrote are what can be compared exactly."""
    if storage != "json" or not isinstance(document, dict) or "emb" not in document:
        return document
    return {**document, "emb": np.asarray(document["emb"], dtype=np.float32).tolist()}


def expected_key(scenario: Scenario, i: int) -> str:
    return f"{scenario.prefix}{i}"


def found_by_name(r: redis.Redis, keys: list[str]) -> set[str]:
    """The keys among ``keys`` a query by the public name finds (FT.SEARCH * INKEYS)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        reply = r.execute_command(
            "FT.SEARCH", INDEX, "*", "INKEYS", len(chunk), *chunk,
            "NOCONTENT", "LIMIT", 0, len(chunk),
        )  # fmt: skip
        found |= {hit[b"id"].decode() for hit in reply[b"results"]}
    return found
