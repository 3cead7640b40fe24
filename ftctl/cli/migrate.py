"""``ftctl migrate plan|wizard|estimate`` (the executor adds apply, resume, … to this group)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from ftctl import indexes
from ftctl.cli import options
from ftctl.cli.state import AppState, pass_state
from ftctl.errors import UsageError
from ftctl.plan.estimate import estimate as estimate_plan
from ftctl.plan.estimate import render_estimate
from ftctl.plan.merge import field_kind, merge_patch
from ftctl.plan.models import (
    FieldRename,
    FieldUpdate,
    IndexChange,
    MigrationPlan,
    PatchChanges,
    SchemaPatch,
    dump_patch,
    dump_plan,
    load_plan,
    patch_from_builtins,
)
from ftctl.planner import MigrationPlanner, resolve_request
from ftctl.schema.model import (
    Field,
    IndexSchema,
    NumericField,
    TagField,
    TextField,
    VectorField,
)
from ftctl.text import printable

T = TypeVar("T")


@click.group(cls=options.Group)
def migrate() -> None:
    """Plan, apply and inspect index schema migrations."""


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write '{path}': {exc.strerror}", "check the path") from None


def _summary(plan: MigrationPlan, plan_out: str) -> None:
    click.echo(f"Migration plan written to {plan_out}")
    click.echo(
        f"Mode: {plan.mode} ({plan.mode_reason})" if plan.mode_reason else f"Mode: {plan.mode}"
    )
    click.echo(f"Supported: {plan.diff_classification.supported}")
    if plan.warnings:
        click.echo("Warnings:")
        for w in plan.warnings:
            click.echo(f"- {printable(w)}")
    if plan.diff_classification.blocked_reasons:
        click.echo("Blocked reasons:")
        for reason in plan.diff_classification.blocked_reasons:
            click.echo(f"- {printable(reason)}")


@migrate.command("plan")
@options.index_name("Index (or alias) to migrate.")
@click.option("--schema-patch", type=click.Path(dir_okay=False), help="SchemaPatch YAML.")
@click.option("--target-schema", type=click.Path(dir_okay=False), help="Full target schema YAML.")
@click.option(
    "--plan-out", required=True, type=click.Path(dir_okay=False), help="Plan YAML to write."
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "online", "drop_recreate"]),
    default="auto",
    show_default=True,
    help="auto: online when the change allows it and the memory preflight passes.",
)
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    help="Online: another alias of the source to move at cut-over (repeatable; "
    "RediSearch cannot list aliases).",
)
@click.option(
    "--drop-old-name", is_flag=True, help="Online index rename: do not keep the old name as alias."
)
@click.option(
    "--postpone-cutover/--immediate-cutover",
    default=None,
    help="Online: stop once the shadow is verified ('ftctl migrate cutover' swaps it in), or "
    "swap at once. Default: postponed when the change alters the query format (a vector "
    "datatype), immediate otherwise.",
)
@pass_state
def plan_command(
    state: AppState,
    index_name: str,
    schema_patch: str | None,
    target_schema: str | None,
    plan_out: str,
    mode: str,
    aliases: tuple[str, ...],
    drop_old_name: bool,
    postpone_cutover: bool | None,
) -> None:
    """Write a migration plan; exits 0 when written, even if the plan is blocked."""
    request = resolve_request(schema_patch_path=schema_patch, target_schema_path=target_schema)
    planner = MigrationPlanner()
    kwargs: dict[str, Any] = {
        "redis_url": state.url,
        "mode": mode,
        "aliases": list(aliases),
        "keep_old_name": not drop_old_name,
        "postpone_cutover": postpone_cutover,
    }
    if isinstance(request, SchemaPatch):
        plan = planner.create_plan(index_name, schema_patch=request, **kwargs)
    else:
        plan = planner.create_plan(index_name, target_schema=request, **kwargs)
    _write(plan_out, dump_plan(plan))
    _summary(plan, plan_out)


@migrate.command("estimate")
@options.plan_file
@click.option("--aof-enabled", is_flag=True, help="Also estimate AOF growth.")
def estimate_command(plan_path: str, aof_enabled: bool) -> None:
    """Disk and memory estimate of a plan (dry run, no server needed)."""
    plan = load_plan(plan_path)
    for line in render_estimate(estimate_plan(plan, aof_enabled=aof_enabled)):
        click.echo(line)


# --- the wizard --------------------------------------------------------------------------

_MENU = """Choose an action:
1. Add field (text, tag, numeric, geo, geoshape)
2. Update field (sortable, weight, separator, vector config)
3. Remove field
4. Rename field (rename field in all documents)
5. Rename index (change index name)
6. Change prefix (rename all keys)
7. Preview patch (show pending changes as YAML)
8. Finish"""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
_ADDABLE = ("text", "tag", "numeric", "geo", "geoshape")
_ALGORITHMS = ("flat", "hnsw", "svs-vamana")
_DATATYPES = ("float16", "float32", "bfloat16", "float64", "int8", "uint8")
_METRICS = ("cosine", "l2", "ip")


class _Invalid(Exception):
    """An answer that must be asked again."""


def _ask(text: str, parse: Callable[[str], T]) -> T:
    """Prompt until ``parse`` accepts the answer; a rejected answer is explained and re-asked."""
    while True:
        answer = click.prompt(text, default="", show_default=False, prompt_suffix=": ")
        try:
            return parse(answer.strip())
        except _Invalid as exc:
            click.echo(f"Invalid answer: {exc}")


def _yes_no(answer: str) -> bool:
    if answer.lower() in ("y", "yes"):
        return True
    if answer.lower() in ("n", "no"):
        return False
    raise _Invalid("answer y or n")


def _optional_yes_no(answer: str) -> bool | None:
    return None if answer == "" else _yes_no(answer)


def _choice(options: tuple[str, ...], *, blank: bool = False) -> Callable[[str], str | None]:
    def parse(answer: str) -> str | None:
        if answer == "" and blank:
            return None
        value = answer.lower().replace("_", "-")
        if value == "svs":
            value = "svs-vamana"
        if value not in options:
            raise _Invalid(f"choose one of {', '.join(options)}")
        return value

    return parse


def _positive_int(answer: str) -> int | None:
    if answer == "":
        return None
    if not answer.isdigit() or int(answer) <= 0:
        raise _Invalid("enter a positive whole number, or leave blank")
    return int(answer)


def _positive_float(answer: str) -> float | None:
    if answer == "":
        return None
    try:
        value = float(answer)
    except ValueError:
        raise _Invalid("enter a number, or leave blank") from None
    if value <= 0:
        raise _Invalid("enter a positive number")
    return value


@dataclass
class _Draft:
    """The patch being built; every change is checked by merging it onto the source."""

    source: IndexSchema
    add_fields: list[Field] = field(default_factory=list)
    remove_fields: list[str] = field(default_factory=list)
    update_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    rename_fields: list[FieldRename] = field(default_factory=list)
    index_name: str | None = None
    prefix: str | None = None

    def patch(self) -> SchemaPatch:
        index = (
            IndexChange(name=self.index_name, prefix=self.prefix)
            if self.index_name is not None or self.prefix is not None
            else None
        )
        return SchemaPatch(
            changes=PatchChanges(
                add_fields=list(self.add_fields),
                remove_fields=list(self.remove_fields),
                update_fields=[
                    FieldUpdate(name=n, attrs=a) for n, a in self.update_fields.items() if a
                ],
                rename_fields=list(self.rename_fields),
                index=index,
            )
        )

    def current(self) -> IndexSchema:
        return merge_patch(self.source, self.patch()).target

    def try_change(self, change: Callable[[], None]) -> bool:
        """Apply ``change``; undo it and explain when the patched schema is invalid."""
        saved = (
            list(self.add_fields),
            list(self.remove_fields),
            {k: dict(v) for k, v in self.update_fields.items()},
            list(self.rename_fields),
            self.index_name,
            self.prefix,
        )
        change()
        try:
            self.current()
        except UsageError as exc:
            (
                self.add_fields,
                self.remove_fields,
                self.update_fields,
                self.rename_fields,
                self.index_name,
                self.prefix,
            ) = saved
            click.echo(f"Not applied: {exc.one_line()}")
            return False
        return True


def _new_field_name(draft: _Draft) -> Callable[[str], str]:
    def parse(answer: str) -> str:
        if not _NAME.match(answer):
            raise _Invalid("a field name starts with a letter or _ and has no spaces")
        if draft.current().field(answer) is not None:
            raise _Invalid(f"the schema already has a field '{answer}'")
        return answer

    return parse


def _pick_field(draft: _Draft, text: str, kinds: tuple[str, ...] | None = None) -> Field:
    fields = [f for f in draft.current().fields if kinds is None or field_kind(f) in kinds]
    if not fields:
        raise UsageError("the schema has no field to choose", "add a field first")
    for number, f in enumerate(fields, 1):
        click.echo(f"{number}. {f.name} ({field_kind(f)})")

    def parse(answer: str) -> Field:
        if answer.isdigit() and 1 <= int(answer) <= len(fields):
            return fields[int(answer) - 1]
        for f in fields:
            if f.name == answer:
                return f
        raise _Invalid(f"enter a number from 1 to {len(fields)} or a field name")

    return _ask(text, parse)


def _source_name(draft: _Draft, name: str) -> str:
    """The name a field had before this patch's renames (update_fields may use either)."""
    for rename in draft.rename_fields:
        if rename.new_name == name:
            return rename.old_name
    return name


def _wizard_add(draft: _Draft) -> None:
    name = _ask("Field name", _new_field_name(draft))
    click.echo(f"Field type options: {', '.join(_ADDABLE)}")

    def kind_parse(answer: str) -> str:
        if answer.lower() == "vector":
            raise _Invalid("adding a vector field is blocked (every document needs a vector)")
        value = _choice(_ADDABLE)(answer)
        assert value is not None
        return value

    kind = _ask("Field type", kind_parse)
    attrs: dict[str, Any] = {}
    if kind != "geoshape":
        click.echo("Sortable: enables sorting and aggregation on this field")
        if _ask("Sortable [y/n]", _yes_no):
            attrs["sortable"] = True
    if kind == "tag":
        click.echo("Separator: character that splits multiple values (default: comma)")

        def separator(answer: str) -> str | None:
            if answer == "":
                return None
            if len(answer) != 1:
                raise _Invalid("a separator is one character")
            return answer

        sep = _ask("Separator [leave blank to keep existing/default]", separator)
        if sep is not None:
            attrs["separator"] = sep
    new = patch_from_builtins(
        {"changes": {"add_fields": [{"name": name, "type": kind, "attrs": attrs}]}}
    ).changes.add_fields[0]
    draft.try_change(lambda: draft.add_fields.append(new))


def _vector_update(f: VectorField) -> dict[str, Any]:
    a = f.attrs
    click.echo(f"Current vector config for '{f.name}':")
    click.echo(f"  algorithm: {a.algorithm.upper()}")
    click.echo(f"  datatype: {a.datatype}")
    click.echo(f"  distance_metric: {a.distance_metric}")
    click.echo(f"  dims: {a.dims} (cannot be changed)")
    if a.algorithm == "hnsw":
        click.echo(f"  m: {a.m or 16}")
        click.echo(f"  ef_construction: {a.ef_construction or 200}")
    click.echo("Leave blank to keep current value.")
    out: dict[str, Any] = {}
    click.echo(
        "Algorithm: vector search method (FLAT=brute force, HNSW=graph, SVS-VAMANA=compressed graph)"
    )
    algorithm = _ask(
        f"Algorithm [current: {a.algorithm.upper()}]", _choice(_ALGORITHMS, blank=True)
    )
    if algorithm is not None and algorithm != a.algorithm:
        out["algorithm"] = algorithm
    click.echo("Datatype: float16, float32, bfloat16, float64, int8, uint8")
    click.echo("  (float16 reduces memory ~50%, int8/uint8 reduce ~75%)")
    datatype = _ask(f"Datatype [current: {a.datatype}]", _choice(_DATATYPES, blank=True))
    if datatype is not None and datatype != a.datatype:
        out["datatype"] = datatype
    click.echo("Distance metric: how similarity is measured (cosine, l2, ip)")
    metric = _ask(f"Distance metric [current: {a.distance_metric}]", _choice(_METRICS, blank=True))
    if metric is not None and metric != a.distance_metric:
        out["distance_metric"] = metric
    if (algorithm or a.algorithm) == "hnsw":
        click.echo("M: number of connections per node (higher=better recall, more memory)")
        m = _ask(f"M [current: {a.m or 16}]", _positive_int)
        if m is not None:
            out["m"] = m
        click.echo("EF_CONSTRUCTION: build-time search depth (higher=better recall, slower build)")
        ef = _ask(f"EF_CONSTRUCTION [current: {a.ef_construction or 200}]", _positive_int)
        if ef is not None:
            out["ef_construction"] = ef
    return out


def _wizard_update(draft: _Draft) -> None:
    click.echo("Updatable fields:")
    f = _pick_field(draft, "Select a field to update by number or name")
    attrs: dict[str, Any] = {}
    if isinstance(f, VectorField):
        attrs = _vector_update(f)
    else:
        if isinstance(f, TextField | TagField | NumericField) or field_kind(f) == "geo":
            current = bool(getattr(f.attrs, "sortable", False))
            sortable = _ask(f"Sortable [y/n, current: {'y' if current else 'n'}]", _optional_yes_no)
            if sortable is not None and sortable != current:
                attrs["sortable"] = sortable
        if isinstance(f, TextField):
            weight = _ask(f"Weight [current: {f.attrs.weight:g}]", _positive_float)
            if weight is not None:
                attrs["weight"] = weight
        if isinstance(f, TagField):

            def separator(answer: str) -> str | None:
                if answer and len(answer) != 1:
                    raise _Invalid("a separator is one character")
                return answer or None

            sep = _ask("Separator [leave blank to keep existing/default]", separator)
            if sep is not None:
                attrs["separator"] = sep
    if not attrs:
        click.echo("No change.")
        return
    key = _source_name(draft, f.name)

    def change() -> None:
        draft.update_fields.setdefault(key, {}).update(attrs)

    draft.try_change(change)


def _wizard_remove(draft: _Draft) -> None:
    f = _pick_field(draft, "Select a field to remove by number or name")
    name = _source_name(draft, f.name)
    if any(x.name == f.name for x in draft.add_fields):
        draft.try_change(
            lambda: draft.add_fields.__setitem__(
                slice(None), [x for x in draft.add_fields if x.name != f.name]
            )
        )
        return
    draft.try_change(lambda: draft.remove_fields.append(name))


def _wizard_rename(draft: _Draft) -> None:
    f = _pick_field(draft, "Select a field to rename by number or name")
    if f.name not in {x.name for x in draft.source.fields}:
        click.echo("Not applied: only fields of the live index can be renamed")
        return
    new = _ask("New field name", _new_field_name(draft))
    draft.try_change(lambda: draft.rename_fields.append(FieldRename(old_name=f.name, new_name=new)))


def _wizard_rename_index(draft: _Draft) -> None:
    def parse(answer: str) -> str:
        if not answer or " " in answer:
            raise _Invalid("an index name is non-empty and has no spaces")
        if answer == draft.source.name:
            raise _Invalid("that is the current name")
        return answer

    new = _ask(f"New index name [current: {draft.source.name}]", parse)

    def change() -> None:
        draft.index_name = new

    draft.try_change(change)


def _wizard_prefix(draft: _Draft) -> None:
    current = draft.source.prefixes

    def parse(answer: str) -> str:
        if not answer or " " in answer:
            raise _Invalid("a prefix is non-empty and has no spaces")
        if [answer] == current:
            raise _Invalid("that is the current prefix")
        return answer

    new = _ask(f"New prefix [current: {', '.join(current) or '(none)'}]", parse)

    def change() -> None:
        draft.prefix = new

    draft.try_change(change)


def _menu_choice(answer: str) -> int:
    if answer.isdigit() and 1 <= int(answer) <= 8:
        return int(answer)
    raise _Invalid("enter a number from 1 to 8")


@migrate.command("wizard")
@options.index_name("Index (or alias) to migrate.")
@click.option(
    "--plan-out",
    default="migration_plan.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option("--patch-out", type=click.Path(dir_okay=False), help="Also write the patch YAML.")
@pass_state
def wizard_command(state: AppState, index_name: str, plan_out: str, patch_out: str | None) -> None:
    """Build a migration interactively, then write the plan (and optionally the patch)."""
    source = indexes.source_schema(index_name, redis_url=state.url)
    click.echo(f"Building a migration plan for index '{source.name}'")
    click.echo("Current schema:")
    click.echo(f"- Index name: {source.name}")
    click.echo(f"- Storage type: {source.storage_type}")
    click.echo(f"- Prefix: {', '.join(source.prefixes) or '(none)'}")
    for f in source.fields:
        click.echo(f"  - {f.name} ({field_kind(f)})")
    draft = _Draft(source=source)
    actions: dict[int, Callable[[_Draft], None]] = {
        1: _wizard_add,
        2: _wizard_update,
        3: _wizard_remove,
        4: _wizard_rename,
        5: _wizard_rename_index,
        6: _wizard_prefix,
    }
    while True:
        click.echo(_MENU)
        choice = _ask("Enter a number", _menu_choice)
        if choice == 7:
            click.echo(dump_patch(draft.patch()).decode().rstrip())
            continue
        if choice == 8:
            break
        actions[choice](draft)
    patch = draft.patch()
    if patch_out:
        _write(patch_out, dump_patch(patch))
        click.echo(f"Schema patch written to {patch_out}")
    plan = MigrationPlanner().create_plan(index_name, redis_url=state.url, schema_patch=patch)
    _write(plan_out, dump_plan(plan))
    _summary(plan, plan_out)


__all__ = ["migrate"]
