"""Plan warnings in the words RedisVL's guide and its users look for (pure).

The planner's warnings (:mod:`ftctl.plan.build`) say more than RedisVL's; two of them must
also be recognisable to code written against ``redisvl.migration``:

- a source with indexing failures: RedisVL writes "Source index has N hash indexing
  failure(s)", and callers find that warning by the words ``hash indexing failure``;
- a lossy quantization: a single-index apply runs a reviewed lossy plan as the guide does
  (the plan shows the measured recall); only ``batch-apply`` asks for
  ``--accept-data-loss``, as the guide's batch flags say.

:func:`guide_warnings` rewrites exactly those sentences and leaves every other warning as
it is. It is applied where plans are built (the planner and the batch planner).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_FAILURES = re.compile(
    r"^Source index '(?P<name>.*)' has (?P<count>\d+) indexing failures(?P<rest>:.*)$"
)
_ACCEPT = "; apply needs --accept-data-loss"
_ACCEPT_NOW = "; reviewed here, apply runs it (batch-apply asks for --accept-data-loss)"


def guide_warnings(warnings: Sequence[str]) -> list[str]:
    """``warnings`` with the indexing-failure and data-loss sentences in the guide's terms."""
    out: list[str] = []
    for warning in warnings:
        found = _FAILURES.match(warning)
        if found is not None:
            count = int(found["count"])
            warning = (
                f"Source index '{found['name']}' has {count:,} hash indexing failure(s)"
                f"{found['rest']}"
            )
        if warning.endswith(_ACCEPT):
            warning = warning[: -len(_ACCEPT)] + _ACCEPT_NOW
        out.append(warning)
    return out


__all__ = ["guide_warnings"]
