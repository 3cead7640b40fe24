"""The asyncio driver's handling of progress reports (no server: no command is sent)."""

from __future__ import annotations

import redis.asyncio

from ftctl.drivers import AsyncDriver
from ftctl.steps.effects import Progress, Step


def _moving() -> Step[str]:
    yield Progress(done=7, total=10)
    return "moved"


async def test_progress_effects_go_to_the_progress_sink() -> None:
    """As with the sync driver: Progress reaches the ``progress`` sink, or is dropped."""
    seen: list[Progress] = []
    client = redis.asyncio.Redis()
    assert await AsyncDriver(client, progress=seen.append).run(_moving()) == "moved"
    assert [(p.done, p.total) for p in seen] == [(7, 10)]
    assert await AsyncDriver(client).run(_moving()) == "moved"
    await client.aclose()
