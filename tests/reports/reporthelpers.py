"""Builders for report tests (imported by name; tests/reports is on sys.path).

A real state store built through the store's own API, from a hand-made spec.

SPECS is the single source of the expected numbers: tests compute what a report should say from
SPECS in plain Python (or from the file with plain sqlite3 SQL), never from the report code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kretain.store import Store, queries, transitions
from kretain.store.models import asset_columns, entry_fields_from_wire, parse_asset
from kretain.store.states import Action, State

GiB = 1024**3
TiB = 1024**4
HOSTILE_OWNER = 'Émile, "the" <owner>'
HOSTILE_NAME = '=SUM(A1), "quoted" name,\nsecond line\r\n\x1b[2J\x07bell\ttab'


@dataclass(frozen=True)
class Spec:
    id: str
    policy: str | None
    state: State
    owner: str | None = "alice"
    media_type: int = 1
    quiz: bool = False
    external: bool = False
    duration: int = 0
    plays: int | None = 0  # None: the wire object carries no play data
    status: int = 2
    # (size_bytes, is_source); None = never sized (no replace_assets call)
    flavors: tuple[tuple[int, bool], ...] | None = ()
    error: str | None = None
    exempt_by: str | None = None
    name: str | None = None
    last_played_at: int | None = field(default=None)

    @property
    def action(self) -> Action | None:
        if self.policy is None or self.exempt_by or self.state in (State.KEPT, State.EXEMPT):
            return None
        return (
            Action.DELETE_FLAVORS if self.policy in ("2-year", "6-month") else Action.DELETE_ENTRY
        )

    @property
    def bytes_saved(self) -> int | None:
        if self.flavors is None:
            return None
        if self.action is None:
            return 0
        return sum(s for s, src in self.flavors if self.action == Action.DELETE_ENTRY or not src)


def _id(n: int) -> str:
    return f"0_rep{n:05d}"


SPECS: tuple[Spec, ...] = (
    # 2-year (delete_flavors)
    Spec(
        _id(1),
        "2-year",
        State.SIZED,
        duration=3600,
        flavors=((1000, True), (2000, False), (3000, False)),
    ),
    Spec(
        _id(2),
        "2-year",
        State.DELETED,
        media_type=5,
        duration=1800,
        plays=5,
        flavors=((500, True), (700, False)),
        last_played_at=1_550_000_000,
    ),
    Spec(_id(3), "2-year", State.CANDIDATE, owner="bob", media_type=2, duration=99, flavors=None),
    Spec(
        _id(4),
        "2-year",
        State.SIZED,
        owner="bob",
        external=True,
        duration=600,
        plays=3,
        flavors=(),
        last_played_at=1_551_000_000,
    ),
    Spec(
        _id(5),
        "2-year",
        State.DELETE_FAILED,
        owner=HOSTILE_OWNER,
        quiz=True,
        duration=125,
        plays=None,
        flavors=((10_000, True), (3 * 1024**2, False)),
        error="ACTION_BLOCKED: too many deletes",
        name=HOSTILE_NAME,
    ),
    # 4-year (delete_entry)
    Spec(
        _id(6),
        "4-year",
        State.ARCHIVED,
        owner="carol",
        quiz=True,
        external=True,
        duration=7200,
        flavors=((2 * GiB, True), (512 * 1024**2, False)),
    ),
    Spec(
        _id(7),
        "4-year",
        State.DOWNLOADING,
        owner="carol",
        media_type=5,
        duration=59,
        flavors=((4096, True),),
    ),
    Spec(_id(8), "4-year", State.DELETING, owner=None, duration=10, flavors=((1_000_000, True),)),
    Spec(
        _id(9),
        "4-year",
        State.DELETED,
        duration=1000,
        plays=1,
        flavors=((3 * TiB, True),),
        last_played_at=1_400_000_000,
    ),
    # non-ready (delete_entry)
    Spec(_id(10), "non-ready", State.CANDIDATE, owner="dave", status=-1, flavors=((12345, True),)),
    Spec(
        _id(11),
        "non-ready",
        State.BACKUP_FAILED,
        owner="dave",
        media_type=2,
        status=7,
        duration=5,
        plays=None,
        flavors=None,
        error="DownloadHTTPError: 404 Not Found for flavor 0_x",
    ),
    # a configured rule beyond the defaults
    Spec(
        _id(12),
        "6-month",
        State.SIZED,
        owner="erin",
        duration=30,
        plays=2,
        flavors=((1, True), (2, False)),
        last_played_at=1_560_000_000,
    ),
    # not acted on by the policy: must not appear in default reports
    Spec(_id(13), None, State.KEPT, duration=5000, flavors=None),
    Spec(
        _id(14),
        "4-year",
        State.EXEMPT,
        owner="bob",
        duration=40,
        exempt_by="tag:legal",
        flavors=((777, True),),
    ),
    Spec(
        _id(15),
        "2-year",
        State.ERROR,
        owner="frank",
        duration=20,
        error="INVALID_KS: expired",
        flavors=None,
    ),
    Spec(_id(16), None, State.ERROR, owner="gina", duration=20, flavors=None),
)

# How each final state is reached from "candidate" through the store's allowed moves.
PATHS: dict[State, tuple[State, ...]] = {
    State.CANDIDATE: (),
    State.SIZED: (State.SIZED,),
    State.DOWNLOADING: (State.SIZED, State.DOWNLOADING),
    State.ARCHIVED: (State.SIZED, State.DOWNLOADING, State.ARCHIVED),
    State.BACKUP_FAILED: (State.SIZED, State.DOWNLOADING, State.BACKUP_FAILED),
    State.DELETING: (State.SIZED, State.DOWNLOADING, State.ARCHIVED, State.DELETING),
    State.DELETED: (State.SIZED, State.DOWNLOADING, State.ARCHIVED, State.DELETING, State.DELETED),
    State.ERROR: (State.ERROR,),
}
DELETE_FLAVORS_PATHS: dict[State, tuple[State, ...]] = {
    State.DELETING: (State.SIZED, State.DELETING),
    State.STRIPPED: (State.SIZED, State.DELETING, State.STRIPPED),
    State.DELETE_FAILED: (State.SIZED, State.DELETING, State.DELETE_FAILED),
}


def wire(spec: Spec, n: int) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "objectType": "KalturaMediaEntry",
        "id": spec.id,
        "partnerId": 1234567,
        "name": spec.name if spec.name is not None else f"Lecture {n}",
        "type": "externalMedia.externalMedia" if spec.external else 1,
        "mediaType": spec.media_type,
        "status": spec.status,
        "createdAt": 1_400_000_000 + n * 1000,
        "updatedAt": 1_400_000_500 + n * 1000,
        "duration": spec.duration,
    }
    if spec.owner is not None:
        obj["userId"] = spec.owner
    if spec.plays is not None:
        obj["plays"] = spec.plays
    if spec.last_played_at is not None:
        obj["lastPlayedAt"] = spec.last_played_at
    if spec.quiz:
        obj["capabilities"] = "quiz.quiz"
    return obj


def created_at(spec: Spec) -> int:
    return 1_400_000_000 + (SPECS.index(spec) + 1) * 1000


async def build(store: Store, specs: tuple[Spec, ...] = SPECS) -> None:
    admissions = []
    for n, spec in enumerate(specs, start=1):
        fields = entry_fields_from_wire(wire(spec, n))
        if spec.state in (State.KEPT, State.EXEMPT) or (spec.policy is None):
            state = spec.state
        else:
            state = State.CANDIDATE
        admissions.append(
            transitions.Admission(
                fields=fields,
                state=state,
                policy=spec.policy,
                action=spec.action,
                reason=f"{spec.policy or 'no'} rule",
                exempt_by=spec.exempt_by,
            )
        )
    await transitions.admit(store, admissions, run_id=None)
    for spec in specs:
        if spec.flavors is None:
            continue
        assets = [
            asset_columns(
                parse_asset(
                    "flavor",
                    {
                        "id": f"{spec.id}f{i}",
                        "entryId": spec.id,
                        "sizeInBytes": size,
                        "isOriginal": src,
                        "flavorParamsId": 0 if src else 3,
                        "status": 2,
                    },
                ),
                top_entry=spec.id,
                is_source=src,
            )
            for i, (size, src) in enumerate(spec.flavors)
        ]
        await queries.replace_assets(store, spec.id, assets)
    for spec in specs:
        if spec.policy is None and spec.state == State.ERROR:
            continue  # admitted straight into error
        if spec.state in (State.KEPT, State.EXEMPT):
            continue
        paths = PATHS
        if spec.action == Action.DELETE_FLAVORS and spec.state in DELETE_FLAVORS_PATHS:
            paths = DELETE_FLAVORS_PATHS
        current = State.CANDIDATE
        for step in paths[spec.state]:
            failing = (State.BACKUP_FAILED, State.DELETE_FAILED, State.ERROR)
            error = spec.error if step in failing else None
            await transitions.move(store, spec.id, current, step, run_id=None, error=error)
            current = step


# ---- enforcement: rows the delete stage acted on (the report's tests) -------------------------
# Rows are put where the delete stage leaves them the way it will: through transitions.move,
# with bytes_freed / held_reason in the move's updates, at chosen times (so events carry them).

DAY = 86_400
ENFORCE_T0 = 1_767_268_800  # 2026-01-01 12:00 UTC
HOSTILE_RULE = "<i>rule</i> | x"
HOSTILE_HELD = '<script>alert("held")</script>: owner said no'
MD_HOSTILE_OWNER = "**bold** | [link](http://x) <b>"
CONTROL_OWNER = "evil\x1b[2J\u202eowner"


def _eid(n: int) -> str:
    return f"0_enf{n:04d}"


ENFORCED_SPECS: tuple[Spec, ...] = (
    Spec(_eid(1), "4-year", State.ARCHIVED, owner="hana", duration=100,
         flavors=((5 * GiB, True), (GiB, False))),
    Spec(_eid(2), "4-year", State.ARCHIVED, owner="hana", duration=200,
         flavors=((3 * GiB, True),)),
    Spec(_eid(3), "2-year", State.SIZED, owner="ivan", duration=300,
         flavors=((GiB, True), (2 * GiB, False), (512 * 1024**2, False))),
    Spec(_eid(4), "2-year", State.SIZED, owner="ivan", duration=400,
         flavors=((GiB, True), (700 * 1024**2, False))),
    Spec(_eid(5), "4-year", State.ARCHIVED, owner=CONTROL_OWNER, duration=50,
         flavors=((9 * GiB, True),)),
    Spec(_eid(6), "4-year", State.ARCHIVED, owner="judy", duration=60,
         flavors=((123_456_789, True),)),
    Spec(_eid(7), "4-year", State.ARCHIVED, owner="judy", media_type=2, duration=0,
         flavors=((4_000_000, True),)),
    Spec(_eid(8), "4-year", State.ARCHIVED, owner="karl", duration=70,
         flavors=((7 * GiB, True),)),
    Spec(_eid(9), "4-year", State.ARCHIVED, owner="karl", duration=80,
         flavors=((2 * GiB, True),)),
    Spec(_eid(10), HOSTILE_RULE, State.SIZED, owner=MD_HOSTILE_OWNER, duration=90,
         flavors=((11 * GiB, True),)),
)  # fmt: skip

# (entry, state to move to, days after ENFORCE_T0, updates)
ENFORCEMENT_STEPS: tuple[tuple[str, State, int, dict[str, Any]], ...] = (
    (_eid(1), State.DELETING, 0, {}),
    (_eid(1), State.DELETED, 0, {"bytes_freed": 6 * GiB, "delete_mode": "delete"}),
    (_eid(2), State.DELETING, 0, {}),
    (_eid(2), State.RECYCLED, 0, {"bytes_freed": 3 * GiB, "delete_mode": "recycle"}),
    (_eid(2), State.DELETED, 3, {}),  # the recycle bin emptied: not a second removal
    (_eid(3), State.DELETING, 1, {}),
    (_eid(3), State.STRIPPED, 1, {"bytes_freed": 2 * GiB + 512 * 1024**2}),
    (_eid(4), State.SIZED, 1, {"held_reason": "not noticed: owner told 2026-01-01"}),
    (_eid(5), State.ARCHIVED, 1, {"held_reason": "not noticed: waiting 14 days"}),
    (_eid(6), State.ARCHIVED, 1, {"held_reason": HOSTILE_HELD}),
    (_eid(7), State.ARCHIVED, 1, {"held_reason": "owner asked to keep it"}),
    # held once, then deleted: a finished row's old reason is not "held back"
    (_eid(8), State.ARCHIVED, 1, {"held_reason": "stale: planned before"}),
    (_eid(8), State.DELETING, 4, {}),
    (_eid(8), State.DELETED, 4, {"bytes_freed": 7 * GiB}),
    # verify found the copy damaged: back to sized, archived_at still set
    (_eid(9), State.SIZED, 2, {}),
)
# SPECS without its rows moved to deleted by the wall clock (their events would stretch the
# timeline to today).
BASE_SPECS = tuple(s for s in SPECS if s.state != State.DELETED)


async def enforce(store: Store, *, days_apart: int = 1) -> None:
    """BASE_SPECS and ENFORCED_SPECS, then the delete stage's moves (``days_apart`` stretches
    the time between them)."""
    await build(store, BASE_SPECS + ENFORCED_SPECS)
    states = {s.id: s.state for s in ENFORCED_SPECS}
    for entry_id, to, day, updates in ENFORCEMENT_STEPS:
        when = ENFORCE_T0 + day * days_apart * DAY
        if "held_reason" in updates:
            updates = {**updates, "held_at": when}
        await transitions.move(
            store, entry_id, states[entry_id], to, run_id=None, updates=updates, now=when
        )
        states[entry_id] = to
