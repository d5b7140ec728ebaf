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
    shadowed_rules(policy) -> [(rule name, names of the earlier rules that take its entries)]
    policy_warnings(policy, as_of, today) -> [str]   rules that can never match, 0 thresholds,
                                                     a future as_of (for `kretain run`/`policy`)
    describe_rule(rule, as_of) -> str;  describe_policy(policy, as_of) -> dict   plain words
    with_restored(policy, entry_ids) -> Policy     plus the exemptions restores recorded

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
  entry ids (explicit list/file) > restored (entries `kretain restore` brought back) > tags
  (case-insensitive) > category ids (exact, direct categories only) > category full names
  (case-insensitive prefix at ">" boundaries: "MediaSpace>site>channels>Legal" also covers
  "...>Legal>2019", not "...>LegalAid") > owners (case-insensitive) > quiz/external when
  include_quiz / include_external is false.
  Non-ready entries: only an explicit entry-id or restored exemption applies unless
  non_ready_exemptible is true (UCSD does not let owners exempt broken entries; an admin
  naming an id always wins).

Fail closed: when a field a rule needs is missing (createdAt, status, or play data on an entry
that carries none), evaluate returns rule=None, action=None, reason "incomplete data: <field>".
Only READY entries whose object carries ``plays`` can be judged by play rules: a missing
lastPlayedAt then means "never played"; without play data it means "unknown".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from kretain.errors import ConfigError
from kretain.rules import ENTRY_READY, ENTRY_STATUS_NAMES, NON_READY_STATUSES, RESTORED_EXEMPTION

__all__ = [
    "ACTIONS",
    "YEAR_SECONDS",
    "Decision",
    "EntryFacts",
    "Exemptions",
    "Policy",
    "Rule",
    "as_of_timestamp",
    "describe_policy",
    "describe_rule",
    "evaluate",
    "facts_from_fields",
    "policy_warnings",
    "shadowed_rules",
    "with_restored",
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
    backup: bool = True  # delete_entry only: delete only after a verified backup

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
    # Entries `kretain restore` brought back (the state database's exemptions table; a run
    # adds them with with_restored): exempt_by "restored", like an entry id always wins.
    restored: frozenset[str] = frozenset()


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

    def needs_backup(self, rule_name: str | None) -> bool:
        """Whether entries of this rule are deleted only after a verified backup: every
        delete_entry rule unless it says ``backup = false``. A rule this policy does not
        know (renamed after the entry was audited) needs one: fail safe."""
        rule = next((r for r in self.rules if r.name == rule_name), None)
        if rule is None:
            return True
        return rule.action == "delete_entry" and rule.backup

    def backup_rules(self) -> tuple[str, ...]:
        """Names of the delete_entry rules whose entries are deleted only from an archive."""
        return tuple(r.name for r in self.rules if self.needs_backup(r.name))

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


def with_restored(policy: Policy, entry_ids: Iterable[str]) -> Policy:
    """``policy`` with ``entry_ids`` exempt as restored (exempt_by "restored"): the entries
    the state database holds exemptions for (`kretain restore`; `kretain unexempt` lifts)."""
    ids = frozenset(entry_ids)
    if not ids:
        return policy
    exemptions = replace(policy.exemptions, restored=policy.exemptions.restored | ids)
    return replace(policy, exemptions=exemptions)


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
        {
            "name",
            "action",
            "min_age_years",
            "max_age_years",
            "not_played_years",
            "statuses",
            "backup",
        },
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
        backup=_bool(r, "backup", True),
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
    if e.entry_id in ex.restored:
        return RESTORED_EXEMPTION
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


# ---- sanity checks and plain words (for `kretain policy` and the warnings of `kretain run`) ----
#
# A rule matches the box: status in its statuses (READY when none), age in [min, max), and never
# played or last played `gap` years before as_of with gap >= not_played_years. A played entry's
# gap is at most its age. Rule L can never match when every entry in its box is matched by some
# earlier rule (first match wins): possibly by several earlier rules together. Every threshold is
# a breakpoint; between breakpoints, whether each rule matches does not change, so testing one
# entry per cell (status x age cell x {never played, each feasible gap cell}) decides it exactly.


def _rule_statuses(rule: Rule) -> tuple[str, ...]:
    return rule.statuses or (ENTRY_READY,)


def _admits(rule: Rule, status: str, age: float, gap: float | None) -> bool:
    """Whether ``rule`` matches an entry of ``status`` and ``age`` years, last played ``gap``
    years before as_of (None: never played)."""
    if status not in _rule_statuses(rule) or age < rule.min_age_years:
        return False
    if rule.max_age_years is not None and age >= rule.max_age_years:
        return False
    return rule.not_played_years is None or gap is None or gap >= rule.not_played_years


def _taken_by(rule: Rule, earlier: tuple[Rule, ...]) -> tuple[str, ...] | None:
    """The earlier rules that together match every entry ``rule`` matches, or None when some
    entry would reach ``rule``."""
    rules = (rule, *earlier)
    ages = sorted(
        {0.0, *(v for r in rules for v in (r.min_age_years, r.max_age_years) if v is not None)}
    )
    gaps = sorted({0.0, *(r.not_played_years for r in rules if r.not_played_years is not None)})
    used: set[str] = set()
    for i, low in enumerate(ages):
        high = ages[i + 1] if i + 1 < len(ages) else math.inf
        # (age, gap) samples of this age cell: never played, then one per gap cell that a
        # played entry of this age can be in (its gap is at most its age).
        samples: list[tuple[float, float | None]] = [(low, None)]
        samples += [(max(low, g), g) for g in gaps if g < high]
        for status in _rule_statuses(rule):
            for age, gap in samples:
                if not _admits(rule, status, age, gap):
                    continue
                first = next((r for r in earlier if _admits(r, status, age, gap)), None)
                if first is None:
                    return None
                used.add(first.name)
    return tuple(r.name for r in earlier if r.name in used) if used else None


def shadowed_rules(policy: Policy) -> list[tuple[str, tuple[str, ...]]]:
    """Rules that can never match because earlier rules match all their entries first, each
    with the names of those earlier rules."""
    out = []
    for i, rule in enumerate(policy.rules):
        taken = _taken_by(rule, policy.rules[:i])
        if taken:
            out.append((rule.name, taken))
    return out


def policy_warnings(policy: Policy, as_of: date, today: date) -> list[str]:
    """One line per doubtful setting: unreachable rules, zero thresholds, a future as_of."""
    warnings = []
    for name, taken in shadowed_rules(policy):
        by = ", ".join(repr(n) for n in taken)
        warnings.append(
            f"rule {name!r} can never match: every entry it covers is matched first by {by} "
            "(rules are tried in order; the first match decides)"
        )
    for rule in policy.rules:
        if rule.min_age_years == 0:
            who = (
                "entries that have not become ready yet, still converting uploads included,"
                if rule.statuses
                else "entries uploaded today"
            )
            warnings.append(f"rule {rule.name!r} has min_age_years = 0: {who} match it")
        if rule.not_played_years == 0:
            warnings.append(
                f"rule {rule.name!r} has not_played_years = 0: every entry counts as not "
                "played (a play today is 0 years ago)"
            )
    if as_of > today:
        warnings.append(
            f"as-of {as_of.isoformat()} is in the future (today is {today.isoformat()}): entries "
            "are judged by their age on that date; the delete stage will refuse a future as-of"
        )
    return warnings


def _moment(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _years(value: float) -> str:
    return f"{value:g}"


_ACTION_WORDS = {
    ("delete_entry", False): "back up, then delete the entry",
    ("delete_entry", True): "back up what exists, then delete the entry",
    ("delete_flavors", False): "delete every flavor except the source (no backup)",
    ("delete_flavors", True): "delete every flavor except the source (no backup)",
}


def describe_rule(rule: Rule, as_of: date | datetime | int) -> str:
    """The rule in plain words at ``as_of``, with the dates its thresholds fall on."""
    t = as_of_timestamp(as_of)
    if rule.statuses:
        shown = ", ".join(
            s if ENTRY_STATUS_NAMES.get(s, s) == s else f"{s} {ENTRY_STATUS_NAMES[s]}"
            for s in rule.statuses
        )
        who = f"entries that never became ready (status {shown})"
    else:
        who = "ready entries"
    created = f"created at or before {_moment(t - rule.min_age_years * YEAR_SECONDS)}"
    if rule.max_age_years is not None:
        created += f" and after {_moment(t - rule.max_age_years * YEAR_SECONDS)}"
        ages = f"{_years(rule.min_age_years)} to {_years(rule.max_age_years)} years"
    else:
        ages = f"{_years(rule.min_age_years)}+ years"
    text = f"{rule.name}: {who} {created} ({ages} before the as-of date)"
    if rule.not_played_years is None:
        text += ", whatever their plays"
    else:
        played = _moment(t - rule.not_played_years * YEAR_SECONDS)
        text += (
            f" that were never played or last played at or before {played} "
            f"({_years(rule.not_played_years)}+ years before)"
        )
    return f"{text}: {_ACTION_WORDS[(rule.action, bool(rule.statuses))]}"


def _listed(values: Iterable[str]) -> str:
    items = sorted(values)
    return ", ".join(items) if items else "none"


def describe_policy(policy: Policy, as_of: date | datetime | int) -> dict[str, Any]:
    """The effective policy at ``as_of``, JSON-ready: rules with their dates and plain words,
    exemptions with plain words ("text" lists), the order rule."""
    t = as_of_timestamp(as_of)

    def moment(years: float | None) -> str | None:
        return None if years is None else _moment(t - years * YEAR_SECONDS)

    rules = [
        {
            "name": r.name,
            "action": r.action,
            "statuses": list(r.statuses) or [ENTRY_READY],
            "min_age_years": r.min_age_years,
            "max_age_years": r.max_age_years,
            "not_played_years": r.not_played_years,
            "created_at_or_before": moment(r.min_age_years),
            "created_after": moment(r.max_age_years),
            "last_played_at_or_before": moment(r.not_played_years),
            "text": describe_rule(r, as_of),
        }
        for r in policy.rules
    ]
    ex = policy.exemptions
    included = {True: "included", False: "exempt"}
    text = [
        f"entry ids: {len(ex.entry_ids)} (always exempt, also entries that never became ready)",
        f"tags: {_listed(ex.tags)} (case-insensitive, whole tag)",
        f"category ids: {_listed(ex.category_ids)} (categories the entry is directly in)",
        f"categories: {_listed(ex.categories)} (each with its sub-categories)",
        f"owners: {_listed(ex.owners)} (case-insensitive)",
        f"quiz entries: {included[policy.include_quiz]} "
        f"(include_quiz = {str(policy.include_quiz).lower()})",
        f"external (YouTube) entries: {included[policy.include_external]} "
        f"(include_external = {str(policy.include_external).lower()})",
        "entries that never became ready: "
        + (
            "tags, categories and owners exempt them too"
            if policy.non_ready_exemptible
            else "only the entry-id list exempts them"
        )
        + f" (non_ready_exemptible = {str(policy.non_ready_exemptible).lower()})",
    ]
    return {
        "as_of": datetime.fromtimestamp(t, UTC).date().isoformat(),
        "order": "Rules are tried in order; the first that matches decides. An entry that no "
        "rule matches is kept. Ages are in 365-day years counted back from the as-of date "
        "(00:00 UTC).",
        "rules": rules,
        "exemptions": {
            "entry_ids": len(ex.entry_ids),
            "tags": sorted(ex.tags),
            "category_ids": sorted(ex.category_ids),
            "categories": list(ex.categories),
            "owners": sorted(ex.owners),
            "include_quiz": policy.include_quiz,
            "include_external": policy.include_external,
            "non_ready_exemptible": policy.non_ready_exemptible,
            "text": text,
        },
    }
