"""Expand and contract: rewrite documents without a moment where the serving index is wrong.

A change that rewrites stored bytes (a HASH vector's datatype, a field rename, a prefix
change) cannot be built as a shadow index over the same bytes. Instead the new
representation is written *beside* the old one while the source index serves:

- same key: a renamed field is copied under its new name; a vector converted in place is
  written into a temporary field (``OnlineSpec.temp_fields``: the final field → the field
  the first shadow index reads until the contract);
- another key (a prefix change): the whole document is copied, renamed and converted, to
  its key under the new prefix.

:func:`sync_keys` brings given keys in line (read them under ``WATCH``, compute what the
new representation must be from the live old one, write only what differs, ``EXEC``; a key
changed in between is read again). The same function, in its ``contract`` form, also
removes the old representation, writing first whatever a late writer put there in the old
format (a legacy write is converted, never lost). :func:`reconcile` runs it over every key
under the source prefixes (a SCAN): the pass that makes the copy complete whatever change
capture missed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ftctl.errors import MigrationFailed
from ftctl.journal.segments import unpack_field
from ftctl.plan.codecs import convert_rows
from ftctl.plan.quantization import element_size
from ftctl.schema.model import IndexSchema, VectorField
from ftctl.steps.cas import DIGEST_SIZE, digest
from ftctl.steps.effects import (
    Arg,
    Command,
    Commands,
    Offload,
    Progress,
    Session,
    Step,
    Timed,
    Timing,
)
from ftctl.steps.enumerate import SCAN_COUNT, count_keys, glob_escape
from ftctl.steps.pace import Pacer
from ftctl.steps.replies import field_present, ok
from ftctl.steps.spec import Conversion, DocFieldRename, PrefixChange, RunSpec

Phase = Literal["expand", "rewrite", "contract", "discard"]
"""``expand``: write the new representation beside the old. ``rewrite``: also convert
vectors in place (the fields keep their names; the temporary fields still mirror them for
the index that reads those). ``contract``: the final layout — the new representation
where it belongs, the old one (renamed fields, temporary fields, old keys) removed.
``discard`` (a rollback's last pass): the new representation removed wherever the old one
is there, so no document ever loses its only copy (a full pass also removes a prefix
change's copies whose old key was deleted: by then the rollback wrote every copy it found
back to its old key, or the old keys served all along)."""

GROUP = 50
"""Most keys per WATCH group (Redis' WATCH cost grows with the square of the keys watched);
a smaller batch size makes smaller groups."""
RETRIES = 8
"""Times a group whose EXEC failed (a key written meanwhile) is read and decided again."""


@dataclass(frozen=True, slots=True)
class Synced:
    """What a pass did: keys written (new representation created or corrected), keys
    already in line, keys whose old representation is gone (deleted: their copies are
    removed), keys a writer kept changing (left for the next pass)."""

    written: int = 0
    already: int = 0
    deleted: int = 0
    busy: int = 0

    def __add__(self, other: Synced) -> Synced:
        return Synced(
            written=self.written + other.written,
            already=self.already + other.already,
            deleted=self.deleted + other.deleted,
            busy=self.busy + other.busy,
        )

    def counts(self) -> dict[str, int]:
        return {
            "written": self.written,
            "already": self.already,
            "deleted": self.deleted,
            "busy": self.busy,
        }


# --- what the new representation of a document is -----------------------------------------


def location(spec: RunSpec, conversion: Conversion) -> str:
    """Where a converted vector goes while the old one still serves: its final field, or
    (same key, same field name) the temporary field of the online plan."""
    online = spec.online_names()
    if spec.prefix_change is None and conversion.field == conversion.backup_field:
        return online.temp_fields.get(conversion.field, conversion.field)
    return conversion.field


Originals = Mapping[bytes, Mapping[str, tuple[bytes, bytes]]]
"""key → field → (digest of the bytes the migration wrote there, the original bytes): what a
rollback puts back where the migration's bytes are still unchanged."""


@dataclass(frozen=True, slots=True)
class _Doc:
    """One key's decision inputs: its name, and the originals a rollback knows for it."""

    key: bytes
    originals: Mapping[str, tuple[bytes, bytes]]


def _convert(
    conversion: Conversion,
    value: bytes | None,
    doc: _Doc | None = None,
    existing: bytes | None = None,
) -> bytes | None:
    """The converted vector; bytes already of the target width pass as they are (a writer
    that switched to the new format); anything else that cannot be converted is None. A
    rollback gives back the original where the bytes are still the ones the migration wrote
    (their digest), never a conversion back.

    ``existing``: what the target already holds. A widening conversion (a rollback's) keeps
    it where it converts back to ``value`` exactly: an original the rollback restored, whose
    document was synced again (its own write, captured) without its originals at hand."""
    if value is None:
        return None
    known = doc.originals.get(conversion.field) if doc is not None else None
    if known is not None and digest(value) == known[0]:
        return known[1]
    target_width = conversion.dims * element_size(conversion.target)
    source_width = conversion.dims * element_size(conversion.source)
    if existing is not None and len(existing) == target_width > source_width:
        (narrowed,), _ = convert_rows(
            [existing], conversion.target, conversion.source, conversion.dims, conversion.params
        )
        if narrowed == value:
            return existing
    if len(value) == target_width and target_width != source_width:
        return value
    (converted,), _ = convert_rows(
        [value], conversion.source, conversion.target, conversion.dims, conversion.params
    )
    return converted


def _hash_sources(spec: RunSpec) -> list[str]:
    """The old fields a same-key document's new representation is computed from."""
    names = [r.old for r in spec.field_renames] + [c.backup_field for c in spec.conversions]
    return list(dict.fromkeys(names))


def _hash_targets(spec: RunSpec) -> list[str]:
    names = [r.new for r in spec.field_renames] + [location(spec, c) for c in spec.conversions]
    names += spec.online_names().drop_fields
    if spec.online_names().temp_fields and spec.prefix_change is None:
        names += [rollback_temp(t) for t in spec.online_names().temp_fields.values()]
    sources = set(_hash_sources(spec))
    return [n for n in dict.fromkeys(names) if n not in sources]


def _fields(
    spec: RunSpec, have: dict[bytes, bytes], phase: Phase, doc: _Doc
) -> tuple[dict[bytes, bytes], list[bytes]]:
    """For a same-key document holding ``have`` (its old fields, and its new ones where they
    exist): the fields it must have (name → bytes) and the fields it must lose."""
    writes: dict[bytes, bytes] = {}
    if phase == "discard":
        deletes = [r.new.encode() for r in spec.field_renames if r.old.encode() in have]
        deletes += [name.encode() for name in spec.online_names().temp_fields.values()]
        deletes += [
            rollback_temp(name).encode() for name in spec.online_names().temp_fields.values()
        ]
        return writes, deletes
    for rename in spec.field_renames:
        value = have.get(rename.old.encode())
        if value is not None:
            writes[rename.new.encode()] = value
    deletes = [r.old.encode() for r in spec.field_renames] if phase == "contract" else []
    if phase == "contract":
        deletes += [name.encode() for name in spec.online_names().drop_fields]
    for conversion in spec.conversions:
        where = location(spec, conversion).encode()
        in_place = where != conversion.field.encode()
        source = have.get(conversion.backup_field.encode())
        converted = _convert(conversion, source, doc, have.get(where))
        if converted is None:
            continue
        if phase == "contract" and in_place:
            deletes.append(where)
        else:
            writes[where] = converted
        if in_place and phase != "expand":
            writes[conversion.field.encode()] = converted
    return writes, deletes


def _copied_hash(
    spec: RunSpec, old: dict[bytes, bytes], doc: _Doc, copy: dict[bytes, bytes] | None = None
) -> dict[bytes, bytes]:
    """A whole hash document as it must read under its new key (renamed and converted);
    ``copy``: what that key holds now."""
    renamed = {r.old.encode(): r.new.encode() for r in spec.field_renames}
    out = {renamed.get(name, name): value for name, value in old.items()}
    for conversion in spec.conversions:
        name = conversion.field.encode()
        if name in out:
            converted = _convert(conversion, out[name], doc, (copy or {}).get(name))
            if converted is None:
                del out[name]
            else:
                out[name] = converted
    return out


def _copied_json(spec: RunSpec, old: Any) -> Any:
    """A JSON document as it must read under its new key (top-level paths renamed)."""
    if not isinstance(old, dict):
        return old
    out = dict(old)
    for rename in spec.field_renames:
        source, target = _top_level(rename.old), _top_level(rename.new)
        if source in out:
            out[target] = out.pop(source)
    return out


def _top_level(path: str) -> str:
    name = path[2:] if path.startswith("$.") else path
    if not name or any(c in name for c in ".[]*"):
        raise MigrationFailed(f"'{path}' is not a top-level JSON field", "plan it drop_recreate")
    return name


# --- one group of keys, read under WATCH and written in one transaction --------------------


@dataclass(frozen=True, slots=True)
class _Decision:
    commands: list[Command]
    status: Literal["written", "already", "deleted"]


def _decide_same_key(
    spec: RunSpec, doc: _Doc, values: list[Any], ttls: list[Any], phase: Phase, missing_only: bool
) -> _Decision:
    key = doc.key
    sources, targets = _hash_sources(spec), _hash_targets(spec)
    names = [*sources, *targets]
    have = {
        name.encode(): value
        for name, value in zip(names, values, strict=True)
        if isinstance(value, bytes)
    }
    writes, deletes = _fields(spec, have, phase, doc)
    commands: list[Command] = []
    ttl_of = dict(zip(sources, ttls, strict=False))
    for name, value in writes.items():
        if missing_only and name in have:
            continue
        if have.get(name) != value:
            commands.append(("HSET", key, name, value))
            ttl = ttl_of.get(_source_of(spec, name.decode()))
            if isinstance(ttl, int) and ttl > 0:
                commands.append(("HPEXPIREAT", key, ttl, "FIELDS", 1, name))
    gone = [name for name in deletes if name in have]
    if gone:
        commands.append(("HDEL", key, *gone))
    return _Decision(commands, "written" if commands else "already")


def _source_of(spec: RunSpec, target: str) -> str:
    for rename in spec.field_renames:
        if rename.new == target:
            return rename.old
    for conversion in spec.conversions:
        if location(spec, conversion) == target:
            return conversion.backup_field
    return target


def _same_key_reads(spec: RunSpec, key: bytes) -> list[Command]:
    sources, targets = _hash_sources(spec), _hash_targets(spec)
    if spec.storage_type == "json":
        return [("JSON.GET", key, *sources, *targets)]
    return [
        ("HMGET", key, *sources, *targets),
        ("HPEXPIRETIME", key, "FIELDS", len(sources), *sources),
    ]


def _decide_json_same_key(
    spec: RunSpec, key: bytes, reply: Any, phase: Phase, missing_only: bool
) -> _Decision:
    sources, targets = _hash_sources(spec), _hash_targets(spec)
    found = _json_values(reply, [*sources, *targets])
    commands: list[Command] = []
    for rename in spec.field_renames:
        value = found.get(rename.old)
        if missing_only and rename.new in found:
            continue
        if value is not None and found.get(rename.new) != value:
            commands.append(("JSON.SET", key, rename.new, json.dumps(value)))
    if phase == "contract":
        for rename in spec.field_renames:
            if found.get(rename.old) is not None:
                commands.append(("JSON.DEL", key, rename.old))
    if phase == "discard":
        commands = [
            ("JSON.DEL", key, r.new)
            for r in spec.field_renames
            if found.get(r.old) is not None and found.get(r.new) is not None
        ]
    return _Decision(commands, "written" if commands else "already")


def _json_values(reply: Any, paths: list[str]) -> dict[str, Any]:
    """path → its first value, from a multi-path JSON.GET reply (absent paths left out)."""
    if reply is None or isinstance(reply, Exception):
        return {}
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    data = json.loads(text)
    if len(paths) == 1:
        data = {paths[0]: data}
    out: dict[str, Any] = {}
    for path in paths:
        values = data.get(path) if isinstance(data, dict) else None
        if isinstance(values, list) and values:
            out[path] = values[0]
    return out


def _copy_reads(spec: RunSpec, key: bytes) -> list[Command]:
    new = spec.final_key(key)
    if spec.storage_type == "json":
        return [("JSON.GET", key, "$"), ("PEXPIRETIME", key), ("JSON.GET", new, "$")]
    return [("HGETALL", key), ("PEXPIRETIME", key), ("HGETALL", new), ("EVAL", _FIELD_TTLS, 1, key)]


_FIELD_TTLS = """
local names = redis.call('HKEYS', KEYS[1])
if #names == 0 then return {} end
local ttls = redis.call('HPEXPIRETIME', KEYS[1], 'FIELDS', #names, unpack(names))
local out = {}
for i = 1, #names do out[#out + 1] = names[i]; out[#out + 1] = ttls[i] end
return out
"""
"""Every field of a hash with its absolute expiry (-1: none), in one read."""


def _as_map(reply: Any) -> dict[bytes, bytes]:
    if isinstance(reply, dict):
        return {k: v for k, v in reply.items() if isinstance(k, bytes) and isinstance(v, bytes)}
    if isinstance(reply, list):
        return {reply[i]: reply[i + 1] for i in range(0, len(reply) - 1, 2)}
    return {}


def _decide_copy(
    spec: RunSpec, doc: _Doc, replies: list[Any], phase: Phase, missing_only: bool
) -> _Decision:
    key = doc.key
    new = spec.final_key(key)
    if spec.storage_type == "json":
        current, expiry, copy = replies
        exists = current is not None and not isinstance(current, Exception)
        old = json.loads(current)[0] if exists else None
        have = json.loads(copy)[0] if copy is not None and not isinstance(copy, Exception) else None
        wanted = _copied_json(spec, old) if exists else None
    else:
        current, expiry, copy, field_ttls = replies
        old_map = _as_map(current)
        exists = bool(old_map)
        have = _as_map(copy) or None
        wanted = _copied_hash(spec, old_map, doc, have) if exists else None
    if phase == "discard":
        gone: list[Command] = [("DEL", new)] if exists and have is not None else []
        return _Decision(gone, "deleted" if gone else "already")
    if not exists:
        # The old document is gone. Before the contract that is a delete through the old
        # name, which its copy follows; during the contract the contract removed it itself.
        deleting = have is not None and phase != "contract"
        commands: list[Command] = [("DEL", new)] if deleting else []
        return _Decision(commands, "deleted" if commands else "already")
    commands = []
    if have != wanted and not (missing_only and have is not None):
        commands.append(("DEL", new))
        if spec.storage_type == "json":
            commands.append(("JSON.SET", new, "$", json.dumps(wanted)))
        else:
            assert isinstance(wanted, dict)
            pairs: list[Arg] = [part for item in wanted.items() for part in item]
            commands.append(("HSET", new, *pairs))
            renamed = {r.old.encode(): r.new.encode() for r in spec.field_renames}
            ttls = _as_map_ints(field_ttls)
            for name, ttl in ttls.items():
                target = renamed.get(name, name)
                if ttl > 0 and target in wanted:
                    commands.append(("HPEXPIREAT", new, ttl, "FIELDS", 1, target))
        if isinstance(expiry, int) and expiry > 0:
            commands.append(("PEXPIREAT", new, expiry))
    if phase == "contract":
        commands.append(("DEL", key))
    return _Decision(commands, "written" if commands else "already")


def _as_map_ints(reply: Any) -> dict[bytes, int]:
    if not isinstance(reply, list):
        return {}
    return {
        reply[i]: int(reply[i + 1])
        for i in range(0, len(reply) - 1, 2)
        if isinstance(reply[i], bytes) and isinstance(reply[i + 1], int)
    }


def _reads(spec: RunSpec, key: bytes) -> list[Command]:
    if spec.prefix_change is not None:
        return _copy_reads(spec, key)
    return _same_key_reads(spec, key)


def _decide(
    spec: RunSpec, doc: _Doc, replies: list[Any], phase: Phase, missing_only: bool
) -> _Decision:
    if spec.prefix_change is not None:
        return _decide_copy(spec, doc, replies, phase, missing_only)
    if spec.storage_type == "json":
        return _decide_json_same_key(spec, doc.key, replies[0], phase, missing_only)
    values = ok(replies[0], "HMGET")
    ttls = replies[1] if isinstance(replies[1], list) else []
    assert isinstance(values, list)
    return _decide_same_key(spec, doc, values, ttls, phase, missing_only)


def _group(
    spec: RunSpec,
    keys: Sequence[bytes],
    phase: Phase,
    originals: Originals,
    missing_only: bool,
    pacer: Pacer | None = None,
) -> Step[Synced]:
    """One WATCH group: read, decide, write in one MULTI/EXEC; read again when a key changed
    in between (``busy`` after :data:`RETRIES`). The pacer learns each MULTI/EXEC's round
    trip (the server runs it in one go: queries wait that long)."""
    watched = [
        k for key in keys for k in ((key, spec.final_key(key)) if spec.prefix_change else (key,))
    ]
    for _attempt in range(RETRIES):
        per_key = [_reads(spec, key) for key in keys]
        reads: list[Command] = [("WATCH", *watched)]
        reads += [c for cmds in per_key for c in cmds]
        replies = yield Commands(reads)
        ok(replies[0], "WATCH")

        def decide_all(
            replies: list[Any] = replies, per_key: list[list[Command]] = per_key
        ) -> list[_Decision]:
            position, out = 1, []
            for key, cmds in zip(keys, per_key, strict=True):
                doc = _Doc(key, originals.get(key, {}))
                answer = replies[position : position + len(cmds)]
                out.append(_decide(spec, doc, answer, phase, missing_only))
                position += len(cmds)
            return out

        decisions: list[_Decision] = yield Offload(decide_all)
        writes = [c for d in decisions for c in d.commands]
        if not writes:
            yield Commands([("UNWATCH",)])
            return Synced(already=len(keys))
        transaction = Commands([("MULTI",), *writes, ("EXEC",)])
        if pacer is None:
            executed = yield transaction
        else:
            timing: Timing = yield Timed(transaction)
            pacer.wrote(timing.seconds)
            executed = timing.replies
        result = executed[-1]
        if result is None:
            continue  # a watched key changed: decide again from what it holds now
        for reply in executed[:-1]:
            ok(reply, "expand write")
        if isinstance(result, list):
            for reply in result:
                ok(reply, "expand write")
        return Synced(
            written=sum(d.status == "written" for d in decisions),
            already=sum(d.status == "already" for d in decisions),
            deleted=sum(d.status == "deleted" for d in decisions),
        )
    return Synced(busy=len(keys))


def sync_keys(
    spec: RunSpec,
    keys: Sequence[bytes],
    phase: Phase,
    *,
    originals: Originals | None = None,
    missing_only: bool = False,
    pacer: Pacer | None = None,
    captured: bool = False,
) -> Step[Synced]:
    """Bring ``keys`` (old names) in line: their new representation written where it is
    missing or stale (``contract``: and their old representation removed), one WATCH group
    of at most ``spec.batch_size`` keys at a time, each reported as progress.

    ``originals``: for a rollback, the original bytes of vectors the migration converted
    (used where the converted bytes are unchanged). ``missing_only``: write only what is
    missing, never correct what exists (after the keys that have originals were done).
    ``pacer``: the keys go in batches of its pace (groups no larger than the batch), with
    its pause flag and pauses before each batch and its measurements after.
    ``captured``: the keys are writes change capture saw; the pacer sizes their batches
    but never pauses between them (see :meth:`~ftctl.steps.pace.Pacer.gate`).
    """
    total = Synced()
    position = 0
    while position < len(keys):
        if pacer is not None:
            yield from pacer.gate(pause=not captured)
        size = pacer.batch if pacer is not None else max(1, spec.batch_size)
        batch = keys[position : position + size]
        group = max(1, min(GROUP, size))
        for start in range(0, len(batch), group):
            part = batch[start : start + group]
            done: Synced = yield Session(
                _group(spec, part, phase, originals or {}, missing_only, pacer)
            )
            total += done
            if pacer is None:
                yield Progress(advance=len(part))  # a pacer reports its batches itself
        position += len(batch)
        if pacer is not None:
            yield from pacer.after(len(batch))
    return total


def _scan_page(prefix: str, cursor: int, key_type: str) -> Command:
    return (
        "SCAN", str(cursor), "MATCH", glob_escape(prefix) + "*", "COUNT", str(SCAN_COUNT),
        "TYPE", key_type,
    )  # fmt: skip


def reconcile(
    spec: RunSpec,
    phase: Phase,
    *,
    missing_only: bool = False,
    pacer: Pacer | None = None,
    follow_deletes: bool = True,
) -> Step[Synced]:
    """:func:`sync_keys` over every document under the source prefixes (a full pass); in
    the ``expand`` and ``discard`` phases of a prefix change, also over every copy whose old
    key is gone (removed: the document was deleted through its old name).

    Such a delete, made while no capture ran (the run was down), is seen only from the
    copy: the pass over the old prefix cannot find it. ``missing_only`` (a rollback writing
    the old layout back) never removes anything; ``follow_deletes`` false (a rollback's
    discard once cut back: such a copy is a write not switched back yet) leaves the copies.
    """
    key_type = "ReJSON-RL" if spec.storage_type == "json" else "hash"
    total = Synced()
    for prefix in spec.source_schema.prefixes or [""]:
        cursor = 0
        while True:
            (reply,) = yield Commands([_scan_page(prefix, cursor, key_type)])
            page = ok(reply, "SCAN")
            assert isinstance(page, list | tuple)
            cursor = int(page[0])
            keys = [k for k in page[1] if isinstance(k, bytes)]
            if keys:
                done = yield from sync_keys(
                    spec, keys, phase, missing_only=missing_only, pacer=pacer
                )
                total += done
            if cursor == 0:
                break
    following = follow_deletes and not missing_only
    if spec.prefix_change is not None and phase in ("expand", "discard") and following:
        total += yield from _follow_deletes(spec, spec.prefix_change, key_type)
    return total


def _follow_deletes(spec: RunSpec, change: PrefixChange, key_type: str) -> Step[Synced]:
    """Copies under the new prefix whose old key is gone, removed. Only where the old layout
    is the truth: before the contract (from then on a missing old key may be one the
    contract moved itself), or in a rollback's discard (never cut over, or every copy was
    written back to its old key first)."""
    back = PrefixChange(old=change.new, new=change.old)
    total = Synced()
    cursor = 0
    while True:
        (reply,) = yield Commands([_scan_page(change.new, cursor, key_type)])
        page = ok(reply, "SCAN")
        assert isinstance(page, list | tuple)
        cursor = int(page[0])
        olds = [back.rename(k) for k in page[1] if isinstance(k, bytes)]
        if olds:
            exists = yield Commands([("EXISTS", old) for old in olds])
            gone = [old for old, n in zip(olds, exists, strict=True) if n == 0]
            if gone:
                total += yield from sync_keys(spec, gone, "expand")
        if cursor == 0:
            return total


def rollback_temp(temp: str) -> str:
    """The temporary field a rollback restores originals into while ``temp`` still serves."""
    return f"{temp}_rb"


def reverse(spec: RunSpec) -> RunSpec:
    """The migration that undoes ``spec``'s layout: renames, key moves and conversions the
    other way, its own temporary fields (so neither index in use loses its bytes), and the
    forward temporary fields to remove at its contract."""
    online = spec.online_names()
    conversions = [
        Conversion(
            backup_field=c.field,
            field=c.backup_field,
            source=c.target,
            target=c.source,
            dims=c.dims,
            params=c.params,
        )
        for c in spec.conversions
    ]
    temps = {
        c.field: rollback_temp(online.temp_fields[c.backup_field])
        for c in conversions
        if spec.prefix_change is None
        and c.field == c.backup_field
        and c.field in online.temp_fields
    }
    back = msgspec.structs.replace(
        online,
        temp_fields=temps,
        drop_fields=list(online.temp_fields.values()),
        serving_name=online.serving_name,
    )
    change = spec.prefix_change
    return msgspec.structs.replace(
        spec,
        source_schema=spec.target_schema,
        target_schema=spec.source_schema,
        prefix_change=PrefixChange(old=change.new, new=change.old) if change else None,
        field_renames=[DocFieldRename(old=r.new, new=r.old) for r in spec.field_renames],
        conversions=conversions,
        online=back,
    )


def first_shadow_schema(spec: RunSpec) -> IndexSchema:
    """The index built while the old layout still serves: the target schema, reading a
    vector converted in place from its temporary field (``temp AS name``)."""
    target = spec.target_schema
    temps = spec.online_names().temp_fields if spec.prefix_change is None else {}
    if not temps:
        return target
    fields = []
    for f in target.fields:
        path = target.field_path(f)
        if isinstance(f, VectorField) and path in temps:
            f = msgspec.structs.replace(f, path=temps[path])
        fields.append(f)
    return msgspec.structs.replace(target, fields=fields)


def rollback_schema(spec: RunSpec) -> IndexSchema:
    """The index a rollback cuts back to while vectors converted in place still hold the new
    bytes: the source schema, reading the originals from the rollback's temporary fields."""
    return first_shadow_schema(reverse(spec))


def originals_of(spec: RunSpec, segment: Any) -> Originals:
    """key (as the reverse migration sees it) → field → (digest of the converted bytes, the
    original bytes), for one backup segment."""
    out: dict[bytes, dict[str, tuple[bytes, bytes]]] = {}
    size = DIGEST_SIZE
    for conversion in spec.conversions:
        recorded = segment.digests.get(conversion.backup_field)
        if recorded is None:
            continue
        values = unpack_field(segment.fields[conversion.backup_field], len(segment.keys))
        for i, (key, original) in enumerate(zip(segment.keys, values, strict=True)):
            written = recorded[i * size : (i + 1) * size]
            if original is None or written == bytes(size):
                continue
            out.setdefault(spec.final_key(key), {})[conversion.backup_field] = (written, original)
    return out


def leftovers(spec: RunSpec) -> Step[int]:
    """Documents that still hold part of the old layout (a key under the old prefix, a
    renamed field under its old name, a temporary field): 0 once the contract is done."""
    if spec.prefix_change is not None:
        return (yield from count_keys(spec.prefix_change.old))
    stale = [r.old for r in spec.field_renames] + list(spec.online_names().temp_fields.values())
    if not stale:
        return 0
    key_type = "ReJSON-RL" if spec.storage_type == "json" else "hash"
    found = 0
    for prefix in spec.target_schema.prefixes or [""]:
        cursor = 0
        while True:
            (reply,) = yield Commands([_scan_page(prefix, cursor, key_type)])
            page = ok(reply, "SCAN")
            assert isinstance(page, list | tuple)
            cursor = int(page[0])
            keys = [k for k in page[1] if isinstance(k, bytes)]
            if keys:
                if spec.storage_type == "json":
                    probes: list[Command] = [("JSON.TYPE", k, f) for k in keys for f in stale]
                else:
                    probes = [("HEXISTS", k, f) for k in keys for f in stale]
                replies = yield Commands(probes)
                hit = {
                    k
                    for k, r in zip([k for k in keys for _ in stale], replies, strict=True)
                    if field_present(r)
                }
                found += len(hit)
            if cursor == 0:
                break
    return found


__all__ = [
    "GROUP",
    "Originals",
    "Phase",
    "Synced",
    "first_shadow_schema",
    "leftovers",
    "location",
    "originals_of",
    "reconcile",
    "reverse",
    "rollback_schema",
    "sync_keys",
]
