"""The analysis options, declared once: each one's flag, default, help, range and parser.

The CLI builds its click options from ``ANALYSIS_OPTIONS`` (``cli_common``), ``RunOptions.from_flags``
parses with ``run_option_values``, and a case command falls back on the same defaults
(``case_values``). Defaults are written as a user writes them on the command line (``10s``); the
library's own constants (``DEFAULT_GAP_NS``, ...) are what they parse to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .classify import load_rules
from .errors import OptionError
from .keep import DEFAULT_ANCHORS
from .loaders import REGISTRY, LoadOptions
from .policy import DEFAULT_ACTIONS, ViolationPolicy
from .sources import DEFAULT_LIMITS, Limits
from .timeparse import (
    EPOCH_UNITS,
    TimeParseError,
    format_duration,
    parse_duration,
    parse_time,
    resolve_zone,
)

DEFAULT_BEFORE_NS = 10 * 1_000_000_000
DEFAULT_AFTER_NS = 30 * 1_000_000_000
UNMAPPED_CHOICES = ("skip", "time")
ACTIONS = ("allowed", "alerted", "denied", "unknown")
"""The verdicts ``--actions`` may name."""


class FlagError(OptionError):
    """An option's value is invalid; ``flag`` names it and ``message`` says why (exit code 2)."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message if message.startswith(f"{flag}:") else f"{flag}: {message}")
        self.flag = flag
        self.message = message


@dataclass(frozen=True)
class CaseSpelling:
    """How a case command (findings, query, ...) offers an option: no default of its own, so a
    value not given falls back on the case's (recorded by ``ingest``), else the built-in one."""

    help: str
    """``{default}`` in it is the option's built-in default."""
    metavar: str | None = None
    recorded: bool = True
    """``ingest`` records the value given as the case's default."""


@dataclass(frozen=True)
class AnalysisOption:
    """One option of the analysing commands (``run``, ``offset``, ``stats``, ``ingest``)."""

    name: str
    """The keyword it is passed as (``lease_grace``)."""
    flag: str
    help: str
    default: Any = None
    """As written on the command line (``10m``); ``()`` for a repeatable option."""
    kind: str = "text"
    """text, choice, path (a file or directory), file, int, float or flag."""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    multiple: bool = False
    complete: str | None = None
    """Shell completion of the values: ``formats`` completes the loaders' names."""
    case: CaseSpelling | None = None
    """Set when case commands take it too (an analysis option, not a loading one)."""
    provenance: tuple[str, ...] = ()
    """Its keys in ``RunOptions.parameters()`` (and export's provenance)."""
    per_ingest: bool = False
    """Its provenance keys are recorded in each ingest's record of how files were read."""

    @property
    def case_help(self) -> str:
        """The help of a case command's spelling, naming the built-in default."""
        assert self.case is not None
        return self.case.help.format(default=self.default)


def _range_error(option: AnalysisOption, value: Any) -> str | None:
    """Why ``value`` is outside the option's choices or range, or None."""
    if option.choices and value not in option.choices:
        return f"choose from {', '.join(option.choices)}"
    if option.minimum is not None and value < option.minimum:
        return f"must be at least {option.minimum:g}: {value!r}"
    if option.maximum is not None and value > option.maximum:
        return f"must be at most {option.maximum:g}: {value!r}"
    return None


ANALYSIS_OPTIONS: tuple[AnalysisOption, ...] = (
    AnalysisOption(
        "before",
        "--before",
        "Window before a call's start (firewall clock behind, event logged early).",
        default=format_duration(DEFAULT_BEFORE_NS),
        case=CaseSpelling(
            "Window before a call's start (default: the case's, else {default}).", "DURATION"
        ),
        provenance=("before",),
    ),
    AnalysisOption(
        "after",
        "--after",
        "Window after a call's end (background processes, flow-log delay).",
        default=format_duration(DEFAULT_AFTER_NS),
        case=CaseSpelling(
            "Window after a call's end (default: the case's, else {default}).", "DURATION"
        ),
        provenance=("after",),
    ),
    AnalysisOption(
        "gap",
        "--gap",
        "Idle gap that ends a conversation (src, dst, dport, proto).",
        default="10m",  # conversations.DEFAULT_GAP_NS
        case=CaseSpelling(
            "Idle gap that ends a conversation (default: the case's, else {default}).", "DURATION"
        ),
        provenance=("gap",),
    ),
    AnalysisOption(
        "tz",
        "--tz",
        "Zone for naive times, for all formats or one (e.g. inventory=Asia/Shanghai). Default UTC.",
        default=(),
        metavar="[FORMAT=]ZONE",
        multiple=True,
        provenance=("tz",),
        per_ingest=True,
    ),
    AnalysisOption(
        "epoch_unit",
        "--epoch-unit",
        "Unit of epoch numbers; auto picks by magnitude and notes it when unexpected.",
        default="auto",
        kind="choice",
        choices=EPOCH_UNITS,
        provenance=("epoch_unit",),
        per_ingest=True,
    ),
    AnalysisOption(
        "inventory",
        "--inventory",
        "Host/sandbox to IP inventory (CSV or JSON); repeatable.",
        default=(),
        kind="path",
        multiple=True,
    ),
    AnalysisOption(
        "internal_cidr",
        "--internal-cidr",
        "Extra internal network (added to RFC 1918, 100.64/10, link-local); repeatable.",
        default=(),
        metavar="CIDR",
        multiple=True,
        case=CaseSpelling("Extra internal network; repeatable (default: the case's).", "CIDR"),
        provenance=("internal_cidrs",),
    ),
    AnalysisOption(
        "actions",
        "--actions",
        "Verdicts that make an outbound event a violation.",
        default=",".join(DEFAULT_ACTIONS),
        case=CaseSpelling(
            "Verdicts that make a violation (default: the case's, else {default}).", "LIST"
        ),
        provenance=("violation_actions",),
    ),
    AnalysisOption(
        "unmapped",
        "--unmapped",
        "Sources not in the identity map: skip them, or join them by time alone.",
        default="skip",
        kind="choice",
        choices=UNMAPPED_CHOICES,
        case=CaseSpelling(
            "Sources not in the identity map: skip, or join by time (default: {default})."
        ),
        provenance=("unmapped",),
    ),
    AnalysisOption(
        "lease_grace",
        "--lease-grace",
        "How long a trajectory's hold on a shared address outlives its last call.",
        default="10m",  # identity.DEFAULT_LEASE_GRACE_NS
        metavar="DURATION",
        case=CaseSpelling(
            "How long a trajectory's hold on a shared address outlives its last call "
            "(default: the case's, else {default}).",
            "DURATION",
        ),
        provenance=("lease_grace",),  # used when identity is built, in every analysis
    ),
    AnalysisOption(
        "formats",
        "--input-format",
        "Force an input format for all files or those matching GLOB (see `correlate formats`).",
        default=(),
        metavar="[GLOB=]NAME",
        multiple=True,
        complete="formats",
        provenance=("formats",),
        per_ingest=True,
    ),
    AnalysisOption(
        "format_option",
        "--option",
        "A setting for one format, e.g. aws_vpc_flow.fields='version account-id ...'.",
        default=(),
        metavar="FORMAT.KEY=VALUE",
        multiple=True,
    ),
    AnalysisOption(
        "reference_date",
        "--reference-date",
        "Reference date for logs without a year (RFC 3164 syslog); default: each file's mtime.",
        metavar="DATE",
    ),
    AnalysisOption(
        "offset",
        "--offset",
        "Clock offset of a network source (its clock minus the trajectories', e.g. "
        "alibaba_cfw=-4s), auto to estimate and apply it, or none. Without it times are compared "
        "as logged (a case's default applies to a case).",
        default=(),
        metavar="auto|none|FORMAT=DURATION",
        multiple=True,
        case=CaseSpelling(
            "Clock offset of a network source, auto (the estimate), or none (as logged); "
            "default: the case's (ingest --offset), else as logged.",
            "auto|none|FORMAT=DURATION",
        ),
        provenance=("offsets", "offset_auto"),
    ),
    AnalysisOption(
        "rules",
        "--rules",
        "JSON file extending the labelling rules (pool domains, ports, thresholds).",
        kind="file",
        case=CaseSpelling("JSON file extending the labelling rules (default: the case's)."),
        provenance=("rules",),
    ),
    AnalysisOption(
        "max_line_bytes",
        "--max-line-bytes",
        "A longer line is one rejected row, read past without being held in memory.",
        default=DEFAULT_LIMITS.max_line_bytes,
        kind="int",
        minimum=1024,
        provenance=("max_line_bytes",),
        per_ingest=True,
    ),
    AnalysisOption(
        "max_expansion",
        "--max-expansion",
        "How many times its size a compressed file may expand (beyond 64 MiB).",
        default=DEFAULT_LIMITS.max_expansion,
        kind="float",
        minimum=1.0,
        provenance=("max_expansion",),
        per_ingest=True,
    ),
    AnalysisOption(
        "anchors",
        "--anchors",
        "Allowed events kept per network format, as a uniform sample for clock anchors and the "
        "bytes norm; every violation is kept whatever N (all: keep every event).",
        default=str(DEFAULT_ANCHORS),
        metavar="N|all",
        provenance=("anchors",),  # only thins what run keeps in memory; a case keeps every event
    ),
    AnalysisOption(
        "strict",
        "--strict",
        "Stop with exit code 1 at the first rejected row.",
        default=False,
        kind="flag",
        provenance=("strict",),
        per_ingest=True,
    ),
)
"""In the order ``--help`` lists them."""

PERMUTATIONS = AnalysisOption(
    "permutations",
    "--permutations",
    "Circular shifts per episode for the statistics (0 skips them).",
    default=999,
    kind="int",
    minimum=0,
    maximum=100_000,
    provenance=("permutations",),
)
"""Statistics written to a file (``run -o``, ``export``, ``report``): 0 skips them. Where the
statistics are the answer (``stats``, ``findings --by``) the least is ``SHOWN_PERMUTATIONS``."""
SHOWN_PERMUTATIONS = 19
"""The fewest shifts with which a p-value can reach 0.05 (1 / (19 + 1))."""

OPTIONS_BY_NAME = {o.name: o for o in (*ANALYSIS_OPTIONS, PERMUTATIONS)}
CASE_OPTIONS = tuple(o for o in ANALYSIS_OPTIONS if o.case is not None)
"""The options case commands take, falling back on the case's defaults."""
RECORDED_KEYS = tuple(o.name for o in CASE_OPTIONS if o.case is not None and o.case.recorded)
"""Analysis options an ingest may record as the case's defaults (CLI spelling, as given)."""


def case_values(given: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Each case option: as given on the command line, else the case's default, else built-in."""
    values: dict[str, Any] = {}
    for option in CASE_OPTIONS:
        value = given.get(option.name)
        if value in (None, ()):
            value = stored.get(option.name, option.default)
        values[option.name] = tuple(value) if isinstance(value, list) else value
    return values


# --- parsing the flags into RunOptions' fields -----------------------------------------------


def _flag(name: str) -> str:
    return OPTIONS_BY_NAME[name].flag


def _duration(name: str, text: str, *, allow_negative: bool = False) -> int:
    """A ``--before``-like duration in nanoseconds (FlagError naming the flag)."""
    try:
        ns = parse_duration(text)
    except OptionError as exc:
        raise FlagError(_flag(name), str(exc)) from None
    if ns < 0 and not allow_negative:
        raise FlagError(_flag(name), f"must not be negative: {text!r}")
    return ns


def _pairs(values: Sequence[str], name: str, default_key: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` or a bare ``VALUE`` (keyed ``default_key``) for repeatable options."""
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep:
            key, rest = default_key, value
        if not key.strip() or not rest.strip():
            raise FlagError(_flag(name), f"expected [KEY=]VALUE, got {value!r}")
        out.append((key.strip(), rest.strip()))
    return out


def _known_formats() -> str:
    return ", ".join(sorted(REGISTRY))


def _zones(values: Sequence[str]) -> dict[str, Any]:
    zones = {}
    for key, value in _pairs(values, "tz", "*"):
        if key != "*" and key not in REGISTRY:
            raise FlagError("--tz", f"unknown format {key!r} (known: {_known_formats()})")
        try:
            zones[key] = resolve_zone(value)
        except OptionError as exc:
            raise FlagError("--tz", str(exc)) from None
    return zones


def _forced(values: Sequence[str]) -> tuple[tuple[str, str], ...]:
    forced = _pairs(values, "formats", "*")
    for _, name in forced:
        if name not in REGISTRY:
            raise FlagError(
                "--input-format", f"unknown format {name!r} (known: {_known_formats()})"
            )
    return tuple(forced)


def _policy(actions: str, internal_cidr: Sequence[str]) -> ViolationPolicy:
    chosen = tuple(a.strip() for a in actions.split(",") if a.strip())
    bad = [a for a in chosen if a not in ACTIONS]
    if bad or not chosen:
        raise FlagError("--actions", f"choose from {', '.join(ACTIONS)}")
    try:
        return ViolationPolicy.with_internal(internal_cidr, actions=chosen)
    except OptionError as exc:
        raise FlagError("--internal-cidr", str(exc).removeprefix("--internal-cidr: ")) from None


def _format_options(values: Sequence[str]) -> dict[str, dict[str, str]]:
    per_format: dict[str, dict[str, str]] = {}
    for key, value in _pairs(values, "format_option", ""):
        fmt, dot, name = key.partition(".")
        if not dot or not name or fmt not in REGISTRY:
            raise FlagError(
                "--option",
                f"expected FORMAT.KEY=VALUE with a known format, got {key!r} "
                f"(known: {_known_formats()})",
            )
        allowed = getattr(REGISTRY[fmt], "OPTIONS", {})
        if name not in allowed:
            keys = ", ".join(sorted(allowed)) or "none"
            raise FlagError("--option", f"{fmt} has no setting {name!r} (its settings: {keys})")
        per_format.setdefault(fmt, {})[name] = value
    return per_format


def _reference_ns(reference_date: str | None) -> int | None:
    if not reference_date:
        return None
    try:
        reference_ns, _ = parse_time(
            reference_date if "T" in reference_date else reference_date + "T00:00:00"
        )
    except TimeParseError:
        raise FlagError(
            "--reference-date", f"not a date: {reference_date!r} (write e.g. 2025-12-02)"
        ) from None
    return reference_ns


def _offsets(values: Sequence[str]) -> tuple[tuple[tuple[str, float], ...], bool]:
    """``--offset``: the known offsets (format, seconds) and whether ``auto`` was given."""
    known: list[tuple[str, float]] = []
    auto = False
    if "none" in (v.strip() for v in values) and len(values) > 1:
        raise FlagError("--offset", "none cannot be combined with other offsets")
    for value in values:
        if value.strip() == "none":  # times as logged (overrides a case's default)
            continue
        if value.strip() == "auto":
            auto = True
            continue
        source, sep, amount = value.partition("=")
        if not sep or source.strip() not in REGISTRY:
            raise FlagError(
                "--offset",
                f"expected auto, none or FORMAT=DURATION with a known format, got {value!r}",
            )
        known.append((source.strip(), _duration("offset", amount, allow_negative=True) / 1e9))
    return tuple(known), auto


def _anchors(text: str) -> int | None:
    """``--anchors``: a count of allowed events to keep per network format, or ``all``."""
    if text.strip().lower() == "all":
        return None
    if not text.strip().isdigit():
        raise FlagError("--anchors", f"expected a count or all, got {text!r}")
    return int(text)


def _checked_ranges(flags: Mapping[str, Any]) -> None:
    """Choices and ranges of the typed options (click checks them first on the command line)."""
    for name, value in flags.items():
        problem = _range_error(OPTIONS_BY_NAME[name], value)
        if problem is not None:
            raise FlagError(_flag(name), problem)


def run_option_values(**flags: Any) -> dict[str, Any]:
    """The flags of an analysing command, as ``RunOptions``' fields (``RunOptions.from_flags``).

    Keywords are the options' names (``lease_grace="10m"``); one not given takes its default.
    Raises FlagError (an OptionError naming the flag) for the first value that is invalid.
    """
    unknown = sorted(set(flags) - {o.name for o in ANALYSIS_OPTIONS} - {"inventory"})
    if unknown:
        raise TypeError(f"not an analysis option: {', '.join(unknown)}")
    values = {o.name: o.default for o in ANALYSIS_OPTIONS} | flags
    values.pop("inventory")  # read by the loader with the inputs, not an option of the analysis
    _checked_ranges({k: values[k] for k in ("epoch_unit", "unmapped")})
    zones = _zones(values["tz"])
    forced = _forced(values["formats"])
    policy = _policy(values["actions"], values["internal_cidr"])
    per_format = _format_options(values["format_option"])
    reference_ns = _reference_ns(values["reference_date"])
    offsets, offset_auto = _offsets(values["offset"])
    try:
        rules = load_rules(values["rules"])
    except OptionError as exc:
        raise FlagError("--rules", str(exc)) from None
    _checked_ranges({k: values[k] for k in ("max_line_bytes", "max_expansion")})
    return {
        "limits": Limits(
            max_line_bytes=values["max_line_bytes"], max_expansion=values["max_expansion"]
        ),
        "rules": rules,
        "rules_path": values["rules"],
        "offsets": offsets,
        "offset_auto": offset_auto,
        "before_ns": _duration("before", values["before"]),
        "after_ns": _duration("after", values["after"]),
        "gap_ns": _duration("gap", values["gap"]),
        "policy": policy,
        "unmapped": values["unmapped"],
        "lease_grace_ns": _duration("lease_grace", values["lease_grace"]),
        "load": LoadOptions(
            zones=zones,
            epoch_unit=values["epoch_unit"],
            strict=bool(values["strict"]),
            reference_ns=reference_ns,
            format_options=per_format,
        ),
        "formats": forced,
        "anchors": _anchors(values["anchors"]),
    }


__all__ = [
    "ACTIONS",
    "ANALYSIS_OPTIONS",
    "CASE_OPTIONS",
    "DEFAULT_AFTER_NS",
    "DEFAULT_BEFORE_NS",
    "OPTIONS_BY_NAME",
    "PERMUTATIONS",
    "RECORDED_KEYS",
    "SHOWN_PERMUTATIONS",
    "UNMAPPED_CHOICES",
    "AnalysisOption",
    "CaseSpelling",
    "FlagError",
    "case_values",
    "run_option_values",
]
