"""The retention policy: pure functions from an entry's facts and a date to a decision. No I/O.

Names:
    Rule, Exemptions, Policy (frozen dataclasses)
    Policy.default() -> Policy                      the seed policy (below)
    Policy.from_mapping(section, *, entry_ids=()) -> Policy   the [policy] table of kretain.toml
    Policy.listing_bounds(as_of, *, ready=None) -> (created_before, played_before | None)
    Policy.non_ready_statuses() -> tuple[str, ...]
    EntryFacts, facts_from_fields(fields) -> EntryFacts   (fields: an `entries` row or
                                                           models.entry_fields_from_wire dict)
    Decision(rule, action, reason, exempt_by, labels)
    evaluate(entry, policy, as_of) -> Decision
    as_of_timestamp(as_of) -> int;  YEAR_SECONDS = 365 days

Default policy (the seed's, 365-day years, evaluated at ``as_of`` 00:00 UTC), rules tried IN ORDER,
first match wins:
  1. "non-ready": status not READY (any of rules.NON_READY_STATUSES) and created >= 2 years
     before as_of -> delete_entry. The 2-year floor mirrors the seed, whose input was only entries
     created 2+ years ago; it also spares uploads that are still converting. Non-ready is tried
     first so an entry that never became ready is reported as such, not as 4-year/2-year.
  2. "4-year": created >= 4 years before AND (never played OR last played >= 4 years before)
     -> delete_entry (back up first).
  3. "2-year": created 2-4 years before (age in [2, 4)) AND (never played OR last played >= 2
     years before) -> delete_flavors (every flavor but the source; no backup).
  Created 4+ years ago and last played 2-4 years ago: no rule matches -> kept.
  Boundaries are inclusive at exactly N years: created_at <= as_of - N*365 days is "N years old".

Exemptions (only for entries a rule matched; Decision.rule names the rule, action is None):
  entry ids (explicit list/file) > tags (case-insensitive) > category ids (exact, direct
  categories only) > category full names (case-insensitive prefix at ">" boundaries:
  "MediaSpace>site>channels>Legal" also covers "...>Legal>2019", not "...>LegalAid") > owners
  (case-insensitive) > quiz/external when include_quiz / include_external is false.
  Non-ready entries: only an explicit entry-id exemption applies unless non_ready_exemptible is
  true (UCSD does not let owners exempt broken entries; an admin naming an id always wins).

Fail closed: when a field a rule needs is missing (createdAt, status, or play data on an entry
that carries none), evaluate returns rule=None, action=None, reason "incomplete data: <field>".
Only READY entries whose object carries ``plays`` can be judged by play rules: a missing
lastPlayedAt then means "never played"; without play data it means "unknown".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from kretain.errors import ConfigError
from kretain.rules import ENTRY_READY, ENTRY_STATUS_NAMES, NON_READY_STATUSES

__all__ = [
    "ACTIONS",
    "YEAR_SECONDS",
    "Decision",
    "EntryFacts",
    "Exemptions",
    "Policy",
    "Rule",
    "as_of_timestamp",
    "evaluate",
    "facts_from_fields",
]

YEAR_SECONDS = 365 * 86_400
ACTIONS = ("delete_entry", "delete_flavors")


def as_of_timestamp(as_of: date | datetime | int) -> int:
    """Unix seconds of ``as_of``: a date means 00:00 UTC that day; naive datetimes are UTC."""
    if isinstance(as_of, bool):
        raise TypeError("as_of must be a date, datetime or Unix seconds")
    if isinstance(as_of, int):
        return as_of
    if isinstance(as_of, datetime):
        dt = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
        return int(dt.timestamp())
    return int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Rule:
    """One retention rule. Ages are in 365-day years, measured from createdAt at as_of.

    min_age_years: age >= min (required, may be 0).  max_age_years: age < max (optional).
    not_played_years: never played, or last played >= that many years before as_of (optional).
    statuses: entry statuses the rule applies to (wire values as text); empty = READY only.
    """

    name: str
    action: str
    min_age_years: float
    max_age_years: float | None = None
    not_played_years: float | None = None
    statuses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError("policy rule: 'name' must be a non-empty string")
        if self.action not in ACTIONS:
            raise ConfigError(
                f"policy rule {self.name!r}: action must be one of {', '.join(ACTIONS)}, "
                f"got {self.action!r}"
            )
        for label, value in (
            ("min_age_years", self.min_age_years),
            ("max_age_years", self.max_age_years),
            ("not_played_years", self.not_played_years),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"policy rule {self.name!r}: {label} must be a number >= 0, got {value!r}"
                )
        if self.max_age_years is not None and self.max_age_years <= self.min_age_years:
            raise ConfigError(
                f"policy rule {self.name!r}: max_age_years must be greater than min_age_years"
            )
        if ENTRY_READY in self.statuses:
            raise ConfigError(
                f"policy rule {self.name!r}: statuses must not include READY (2); "
                "omit statuses for a rule about ready entries"
            )

    @property
    def for_non_ready(self) -> bool:
        return bool(self.statuses)


@dataclass(frozen=True, slots=True)
class Exemptions:
    entry_ids: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()  # lower-cased
    category_ids: frozenset[str] = frozenset()
    categories: tuple[str, ...] = ()  # full names, lower-cased, no trailing ">"
    owners: frozenset[str] = frozenset()  # lower-cased


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    exemptions: Exemptions = Exemptions()
    include_quiz: bool = True
    include_external: bool = True
    non_ready_exemptible: bool = False

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"policy: rule names must be unique, got {names}")
        if not self.rules:
            raise ConfigError("policy: at least one rule is required")

    @classmethod
    def default(cls) -> Policy:
        return cls(rules=DEFAULT_RULES)

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any], *, entry_ids: Iterable[str] = ()) -> Policy:
        """Build from the [policy] table (see config.render_default_toml for the format).

        Any [[policy.rules]] given REPLACE the default rules as a whole (order = priority).
        ``entry_ids``: ids read by the caller from exemptions.entry_ids_file (policy does no I/O).
        Unknown keys raise ConfigError: a typo must never silently widen what gets deleted.
        """
        known = {"rules", "exemptions", "include_quiz", "include_external", "non_ready_exemptible"}
        _no_unknown("policy", section, known)
        rules = DEFAULT_RULES
        if "rules" in section:
            raw_rules = section["rules"]
            if not isinstance(raw_rules, list) or not all(isinstance(r, dict) for r in raw_rules):
                raise ConfigError("policy.rules must be an array of tables ([[policy.rules]])")
            rules = tuple(_rule_from_mapping(r) for r in raw_rules)
        ex = section.get("exemptions", {})
        if not isinstance(ex, dict):
            raise ConfigError("policy.exemptions must be a table")
        _no_unknown(
            "policy.exemptions",
            ex,
            {"tags", "category_ids", "categories", "owners", "entry_ids", "entry_ids_file"},
        )
        ids = {*_str_list(ex, "entry_ids", "policy.exemptions"), *entry_ids}
        exemptions = Exemptions(
            entry_ids=frozenset(i.strip() for i in ids if i.strip()),
            tags=frozenset(t.strip().lower() for t in _str_list(ex, "tags", "policy.exemptions")),
            category_ids=frozenset(
                c.strip() for c in _str_list(ex, "category_ids", "policy.exemptions", ints=True)
            ),
            categories=tuple(
                c.strip().rstrip(">").lower()
                for c in _str_list(ex, "categories", "policy.exemptions")
                if c.strip()
            ),
            owners=frozenset(
                o.strip().lower() for o in _str_list(ex, "owners", "policy.exemptions")
            ),
        )
        return cls(
            rules=rules,
            exemptions=exemptions,
            include_quiz=_bool(section, "include_quiz", True),
            include_external=_bool(section, "include_external", True),
            non_ready_exemptible=_bool(section, "non_ready_exemptible", False),
        )

    def non_ready_statuses(self) -> tuple[str, ...]:
        """Union of the statuses of non-ready rules, in a stable order (for statusIn filters)."""
        seen: dict[str, None] = {}
        for r in self.rules:
            for s in r.statuses:
                seen.setdefault(s, None)
        return tuple(seen)

    def listing_bounds(
        self, as_of: date | datetime | int, *, ready: bool | None = None
    ) -> tuple[int, int | None]:
        """The widest server-side filter that still lists every entry a rule could match.

        Returns (created_before, played_before): send createdAtLessThanOrEqual=created_before and,
        when played_before is not None, lastPlayedAtLessThanOrEqualOrNull=played_before.
        played_before is None when some considered rule ignores plays (then do not filter plays).
        ready=True considers only READY-entry rules, False only non-ready rules, None all.
        Discovery must still re-check each entry with evaluate().
        """
        t = as_of_timestamp(as_of)
        rules = [r for r in self.rules if ready is None or r.for_non_ready != ready]
        if not rules:
            raise ValueError("no rule applies to that kind of entry")
        created_before = t - int(min(r.min_age_years for r in rules) * YEAR_SECONDS)
        if any(r.not_played_years is None for r in rules):
            return created_before, None
        played = min(r.not_played_years for r in rules if r.not_played_years is not None)
        return created_before, t - int(played * YEAR_SECONDS)


def _no_unknown(where: str, mapping: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(mapping) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )


def _bool(mapping: Mapping[str, Any], key: str, default: bool) -> bool:
    value = mapping.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"policy.{key} must be true or false, got {value!r}")
    return value


def _str_list(mapping: Mapping[str, Any], key: str, where: str, *, ints: bool = False) -> list[str]:
    value = mapping.get(key, [])
    ok_types = (str, int) if ints else (str,)
    if not isinstance(value, list) or not all(
        isinstance(v, ok_types) and not isinstance(v, bool) for v in value
    ):
        kind = "strings or integers" if ints else "strings"
        raise ConfigError(f"{where}.{key} must be a list of {kind}")
    return [str(v) for v in value]


def _rule_from_mapping(r: Mapping[str, Any]) -> Rule:
    name = r.get("name")
    where = f"policy rule {name!r}" if isinstance(name, str) else "policy rule"
    _no_unknown(
        where,
        r,
        {"name", "action", "min_age_years", "max_age_years", "not_played_years", "statuses"},
    )
    if "min_age_years" not in r:
        # A rule without an age floor would match yesterday's uploads.
        raise ConfigError(f"{where}: min_age_years is required (use 0 to mean any age)")
    statuses = r.get("statuses", [])
    if not isinstance(statuses, list) or not all(
        isinstance(s, str | int) and not isinstance(s, bool) for s in statuses
    ):
        raise ConfigError(f"{where}: statuses must be a list of entry status values")
    if not statuses and r.get("not_played_years") is None:
        raise ConfigError(
            f"{where}: a rule for ready entries needs not_played_years (or give statuses)"
        )
    return Rule(
        name=name if isinstance(name, str) else "",
        action=r.get("action", ""),
        min_age_years=r["min_age_years"],
        max_age_years=r.get("max_age_years"),
        not_played_years=r.get("not_played_years"),
        statuses=tuple(str(s).strip() for s in statuses),
    )


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("non-ready", "delete_entry", min_age_years=2, statuses=NON_READY_STATUSES),
    Rule("4-year", "delete_entry", min_age_years=4, not_played_years=4),
    Rule("2-year", "delete_flavors", min_age_years=2, max_age_years=4, not_played_years=2),
)


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """What the policy looks at. None = unknown (fail closed), not "empty"."""

    entry_id: str
    created_at: int | None
    status: str | None
    last_played_at: int | None = None
    has_play_data: bool = False  # the object carried `plays`: a missing lastPlayedAt = never
    tags: tuple[str, ...] = ()
    category_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # full names
    owner: str | None = None
    is_quiz: bool = False
    is_external: bool = False


def _split(value: str | None, sep: str = ",") -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(p.strip() for p in value.split(sep) if p.strip())


def facts_from_fields(fields: Mapping[str, Any] | Any) -> EntryFacts:
    """EntryFacts from an `entries` row/EntryRow or a models.entry_fields_from_wire dict."""

    def get(name: str) -> Any:
        if isinstance(fields, Mapping):
            return fields.get(name)
        return getattr(fields, name, None)

    status = get("status")
    return EntryFacts(
        entry_id=str(get("id")),
        created_at=get("created_at"),
        status=None if status is None else str(status),
        last_played_at=get("last_played_at"),
        has_play_data=get("plays") is not None,
        tags=_split(get("tags")),
        category_ids=_split(get("categories_ids")),
        categories=_split(get("categories")),
        owner=get("owner"),
        is_quiz=bool(get("is_quiz")),
        is_external=bool(get("is_external")),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """rule: the matched rule (also when exempt); action: set only for a candidate.

    exempt_by: "entry_id", "tag:<t>", "category_id:<id>", "category:<name>", "owner:<o>",
    "quiz" or "external". labels: ("quiz", "external") facts for reports.
    """

    rule: str | None
    action: str | None
    reason: str
    exempt_by: str | None = None
    labels: tuple[str, ...] = field(default=())

    @property
    def is_candidate(self) -> bool:
        return self.action is not None

    @property
    def incomplete(self) -> bool:
        return self.reason.startswith("incomplete data")


def _played_text(e: EntryFacts) -> str:
    if e.last_played_at is None:
        return "never played"
    return f"last played {_day(e.last_played_at)}"


def _rule_matches(rule: Rule, e: EntryFacts, t: int) -> bool | None:
    """True/False, or None when only the missing play data could decide."""
    assert e.created_at is not None and e.status is not None
    if rule.statuses:
        if e.status not in rule.statuses:
            return False
    elif e.status != ENTRY_READY:
        return False
    if e.created_at > t - rule.min_age_years * YEAR_SECONDS:
        return False
    if rule.max_age_years is not None and e.created_at <= t - rule.max_age_years * YEAR_SECONDS:
        return False
    if rule.not_played_years is None:
        return True
    if not e.has_play_data:
        return None
    if e.last_played_at is None:
        return True
    return e.last_played_at <= t - rule.not_played_years * YEAR_SECONDS


def _exemption(e: EntryFacts, policy: Policy, non_ready: bool) -> str | None:
    ex = policy.exemptions
    if e.entry_id in ex.entry_ids:
        return "entry_id"
    if non_ready and not policy.non_ready_exemptible:
        return None
    for tag in e.tags:
        if tag.lower() in ex.tags:
            return f"tag:{tag}"
    for cid in e.category_ids:
        if cid in ex.category_ids:
            return f"category_id:{cid}"
    for name in e.categories:
        low = name.lower()
        for prefix in ex.categories:
            if low == prefix or low.startswith(prefix + ">"):
                return f"category:{name}"
    if e.owner is not None and e.owner.lower() in ex.owners:
        return f"owner:{e.owner}"
    if e.is_quiz and not policy.include_quiz:
        return "quiz"
    if e.is_external and not policy.include_external:
        return "external"
    return None


def evaluate(entry: EntryFacts, policy: Policy, as_of: date | datetime | int) -> Decision:
    """Decide what the policy wants for one entry at ``as_of`` (see the module docstring)."""
    labels = tuple(
        name for name, on in (("quiz", entry.is_quiz), ("external", entry.is_external)) if on
    )
    if entry.created_at is None:
        return Decision(None, None, "incomplete data: createdAt", labels=labels)
    if entry.status is None:
        return Decision(None, None, "incomplete data: status", labels=labels)
    t = as_of_timestamp(as_of)
    created = f"created {_day(entry.created_at)}"
    for rule in policy.rules:
        matched = _rule_matches(rule, entry, t)
        if matched is None:
            # Rules are tried in order, so an undecidable rule blocks the ones after it too.
            return Decision(None, None, "incomplete data: lastPlayedAt", labels=labels)
        if not matched:
            continue
        if rule.statuses:
            name = ENTRY_STATUS_NAMES.get(entry.status, entry.status)
            shown = entry.status if name == entry.status else f"{entry.status} ({name})"
            why = f"{created}, status {shown}: {rule.name} rule"
        else:
            why = f"{created}, {_played_text(entry)}: {rule.name} rule"
        exempt = _exemption(entry, policy, non_ready=bool(rule.statuses))
        if exempt:
            return Decision(rule.name, None, f"{why}; exempt by {exempt}", exempt, labels)
        return Decision(rule.name, rule.action, why, None, labels)
    if entry.status != ENTRY_READY:
        why = f"{created}, status {entry.status}: no rule matches"
    elif not entry.has_play_data:
        why = f"{created}, play data unknown: no rule matches"
    else:
        why = f"{created}, {_played_text(entry)}: no rule matches"
    return Decision(None, None, why, labels=labels)
