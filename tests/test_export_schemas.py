"""One schema per table across formats; OCSF events valid against the schema; Timesketch context.

The Parquet, CSV and JSON lines exports of each report table (attributions, findings, candidates,
stats) carry the columns of ``reports.parquet.REPORT_SCHEMAS`` in the same order with the same
values; times are ``timestamp[ns, UTC]`` in Parquet and ISO 8601 UTC (``Z``) in the text formats;
list columns are Arrow lists, JSON arrays and ``"; "``-joined CSV cells. Every OCSF event of the
sample's export is validated against OCSF 1.4.0 (below); the Timesketch export holds every call of
the episodes involved in the findings, with labels in ``tag``; both are on the aligned clock.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_case_fixtures import (
    MINER_CALL,
    TUNNEL_CALL,
    TUNNEL_IP,
    hostile_case,
    invoke,
    sample_case,
    scratch,
)

from correlate.case import open_case
from correlate.pipeline import Result, RunOptions
from correlate.query import format_time
from correlate.reports.export import (
    LIST_DELIMITER,
    OCSF_VERSION,
    export,
    involved_episodes,
    ocsf_records,
    ocsf_severity,
    table_records,
    timesketch_records,
)
from correlate.reports.parquet import REPORT_SCHEMAS, report_tables
from correlate.schema import plain_rows

TABLES = ("attributions", "findings", "candidates", "stats")
LISTS = {"labels", "actions", "reasons"}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")
PERMUTATIONS = 19


@cache
def sample_result() -> Result:
    return open_case(sample_case()).analyse(RunOptions())


@cache
def exported(fmt: str) -> dict[str, Path]:
    """The sample case exported through the CLI in ``fmt`` (files by table name)."""
    work = scratch(f"schemas-{fmt}")
    out = work / f"sample.{fmt}"
    args = ["export", str(sample_case()), "--format", fmt, "-o", str(out)]
    result = invoke(*args, "--permutations", str(PERMUTATIONS))
    assert result.exit_code == 0, result.output
    if fmt in ("ocsf", "timesketch"):
        names = {fmt: f"sample.{fmt}"}
    else:
        names = {"attributions": f"sample.{fmt}"} | {t: f"sample.{t}.{fmt}" for t in TABLES[1:]}
    return {name: work / file for name, file in names.items()}


def csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ns_of(text: str) -> int:
    """ISO 8601 UTC with up to nine fraction digits, as ns since the epoch (exactly)."""
    assert ISO_UTC.fullmatch(text), text
    whole, _, frac = text[:-1].partition(".")
    seconds = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


# --- one schema per table -------------------------------------------------------------------


@pytest.mark.parametrize("table", TABLES)
def test_parquet_csv_and_jsonl_carry_the_same_columns_in_the_same_order(table: str) -> None:
    columns = REPORT_SCHEMAS[table].names
    parquet = pq.read_schema(exported("parquet")[table])
    header, rows = csv_rows(exported("csv")[table])
    lines = jsonl_rows(exported("jsonl")[table])
    assert parquet.names == columns
    assert header == columns
    assert (
        rows
        and lines
        and len(rows) == len(lines) == pq.read_metadata(exported("parquet")[table]).num_rows
    )
    assert all(list(line) == columns for line in lines)
    assert parquet.metadata[b"correlate.table"] == table.encode()


def test_run_o_writes_the_same_tables_as_export() -> None:
    out = scratch("run-o") / "report.parquet"
    result = invoke("run", "-q", "sample_logs/rome_incident", "-o", str(out), "--permutations", "0")
    assert result.exit_code == 0, result.output
    for table in TABLES[:3]:
        path = out if table == "attributions" else out.with_name(f"report.{table}.parquet")
        assert pq.read_schema(path).names == REPORT_SCHEMAS[table].names, table
        assert pq.read_table(path).num_rows == pq.read_table(exported("parquet")[table]).num_rows


@pytest.mark.parametrize("table", TABLES)
def test_parquet_types_are_the_declared_ones_times_utc_ns_and_lists_of_strings(table: str) -> None:
    declared = REPORT_SCHEMAS[table]
    written = pq.read_schema(exported("parquet")[table])
    for field in declared:
        got = written.field(field.name).type
        if pa.types.is_timestamp(field.type):
            assert got == pa.timestamp("ns", tz="UTC"), field.name
        elif field.name in LISTS:
            assert pa.types.is_list(got) and got.value_type == pa.string(), field.name
        else:
            assert got == field.type, field.name
    assert {f.name for f in declared if pa.types.is_list(f.type)} <= LISTS


def test_the_parquet_attributions_have_what_the_csv_has_command_labels_rule_and_call() -> None:
    table = pq.read_table(exported("parquet")["attributions"])
    tunnel = next(r for r in table.to_pylist() if r["dst_ip"] == TUNNEL_IP and r["how"] == "direct")
    assert tunnel["call_id"] == TUNNEL_CALL
    assert tunnel["command"].startswith("ssh -fNR 2222:localhost:22")
    assert tunnel["labels"] == ["reverse_tunnel"]
    assert tunnel["rule"] and tunnel["src_port"] and tunnel["src_nat_ip"] == "47.96.180.21"
    assert tunnel["call_ts_start"] is not None and tunnel["candidates"] == 1
    miner = next(r for r in table.to_pylist() if r["call_id"] == MINER_CALL)
    assert miner["signature"] == "Mining behavior on the host" and miner["labels"] == ["mining"]


@pytest.mark.parametrize("table", TABLES)
def test_every_value_is_the_same_in_parquet_jsonl_and_csv(table: str) -> None:
    schema = REPORT_SCHEMAS[table]
    times = {f.name for f in schema if pa.types.is_timestamp(f.type)}
    parquet = plain_rows(pq.read_table(exported("parquet")[table]))
    lines = jsonl_rows(exported("jsonl")[table])
    _, cells = csv_rows(exported("csv")[table])
    for expected, line, row in zip(parquet, lines, cells, strict=True):
        for field in schema:
            name, value = field.name, expected[field.name]
            got = line[name]
            if name in times:
                got = None if got is None else ns_of(got)
                assert row[name] == ("" if value is None else format_time(value)), name
            elif name in LISTS:
                assert isinstance(got, list) and isinstance(value, list), name
                assert row[name].lstrip("'") == LIST_DELIMITER.join(value), name
            assert got == value, (table, name)


def test_text_times_are_iso_8601_utc_with_the_digits_the_nanoseconds_need() -> None:
    seen = 0
    for table in TABLES:
        schema = REPORT_SCHEMAS[table]
        times = [f.name for f in schema if pa.types.is_timestamp(f.type)]
        for line in jsonl_rows(exported("jsonl")[table]):
            for name in times:
                if line[name] is not None:
                    assert ISO_UTC.fullmatch(line[name]), line[name]
                    seen += 1
        _, rows = csv_rows(exported("csv")[table])
        for row in rows:
            for name in times:
                assert row[name] == "" or ISO_UTC.fullmatch(row[name]), row[name]
    assert seen > 100
    assert format_time(1_764_655_879_000_000_001) == "2025-12-02T06:11:19.000000001Z"
    assert format_time(1_764_655_883_100_000_000) == "2025-12-02T06:11:23.1Z"


def test_the_export_files_are_utc_whatever_the_display_zone() -> None:
    work = scratch("zone")
    plain, shanghai = work / "a.csv", work / "b.jsonl"
    base = ["export", str(sample_case()), "--permutations", "0"]
    assert invoke(*base, "--format", "csv", "-o", str(plain)).exit_code == 0
    assert (
        invoke(*base, "--format", "jsonl", "-o", str(shanghai), "--display-tz", "Asia/Shanghai")
    ).exit_code == 0
    assert "+08:00" not in shanghai.read_text()
    assert jsonl_rows(shanghai)[0]["ts"].endswith("Z")


def test_lists_are_lists_and_the_csv_joins_them_with_the_documented_delimiter() -> None:
    findings = jsonl_rows(exported("jsonl")["findings"])
    tunnel = next(f for f in findings if f["dst_ip"] == TUNNEL_IP)
    assert tunnel["labels"] == ["reverse_tunnel"] and tunnel["actions"] == ["denied"]
    assert len(tunnel["reasons"]) > 3
    assert "destination 203.0.113.7 appears in the call" in tunnel["reasons"]
    unlabelled = [f for f in findings if not f["labels"]]
    assert unlabelled and all(f["labels"] == [] for f in unlabelled)  # never null
    _, rows = csv_rows(exported("csv")["findings"])
    row = next(r for r in rows if r["dst_ip"] == TUNNEL_IP)
    assert row["reasons"].split(LIST_DELIMITER) == tunnel["reasons"]
    provenance = json.loads(
        exported("csv")["attributions"].with_name("sample.provenance.json").read_text()
    )
    assert provenance["export"]["list_delimiter"] == LIST_DELIMITER


def test_stats_columns_are_named_as_the_cli_says_onsets_and_in_windows() -> None:
    associations, _ = sample_result().statistics(PERMUTATIONS)
    lines = jsonl_rows(exported("jsonl")["stats"])
    assert {"onsets", "in_windows"} <= set(lines[0]) and "observed" not in lines[0]
    run = next(a for a in associations if a.scope == "run")
    line = next(r for r in lines if r["scope"] == "run")
    assert (line["onsets"], line["in_windows"]) == (run.violations, run.observed)
    baseline = pq.read_schema(exported("parquet")["stats"]).metadata[b"correlate.baseline"]
    provenance = json.loads(
        exported("jsonl")["attributions"].with_name("sample.provenance.json").read_text()
    )
    assert provenance["baseline"] == json.loads(baseline)


def test_table_records_give_iso_times_and_lists_for_json_documents() -> None:
    tables, _ = report_tables(sample_result(), 0)
    record = table_records(tables["findings"])[0]
    assert ISO_UTC.fullmatch(record["first_ts"]) and isinstance(record["labels"], list)
    json.dumps(record)  # plain JSON values only


def test_paths_are_as_the_inputs_were_named_to_ingest() -> None:
    lines = jsonl_rows(exported("jsonl")["attributions"])
    paths = {line["source_path"] for line in lines}
    assert paths and all(p.startswith("sample_logs/rome_incident/firewall/") for p in paths)
    manifest = json.loads((sample_case() / "manifest.json").read_text())
    assert paths <= {i["path"] for i in manifest["inputs"]}


# --- OCSF 1.4.0 -------------------------------------------------------------------------------

# Transcribed from the OCSF schema 1.4.0 (github.com/ocsf/ocsf-schema, tag 1.4.0; Apache-2.0,
# Copyright the OCSF contributors): the Network Activity class (events/base_event.json,
# events/network/network.json, events/network/network_activity.json with the profiles they
# include) and the objects this export uses (objects/*.json), each attribute with its type
# (dictionary.json; "[]" an array), requirement, and the profile it comes from ("@name"; such an
# attribute belongs to the event only when metadata.profiles names the profile).
OCSF_1_4_0 = """
[network_activity]
action string_t optional @security_control
action_id integer_t recommended @security_control
activity_id integer_t required
activity_name string_t optional
actor actor optional @host
api api optional @cloud
app_name string_t optional
attacks attack[] optional @security_control
authorizations authorization[] optional @security_control
category_name string_t optional
category_uid integer_t required
class_name string_t optional
class_uid integer_t required
cloud cloud required @cloud
confidence string_t optional @security_control
confidence_id integer_t recommended @security_control
confidence_score integer_t optional @security_control
connection_info network_connection_info recommended
count integer_t optional
device device recommended @host
disposition string_t optional @security_control
disposition_id integer_t recommended @security_control
dst_endpoint network_endpoint recommended
duration long_t optional
end_time timestamp_t optional
enrichments enrichment[] optional
firewall_rule firewall_rule optional @security_control
is_alert boolean_t recommended @security_control
ja4_fingerprint_list ja4_fingerprint[] optional
load_balancer load_balancer recommended @load_balancer
malware malware[] optional @security_control
message string_t recommended
metadata metadata required
observables observable[] recommended
osint osint[] required @osint
policy policy optional @security_control
proxy network_proxy recommended
proxy_connection_info network_connection_info recommended @network_proxy
proxy_endpoint network_proxy optional @network_proxy
proxy_http_request http_request optional @network_proxy
proxy_http_response http_response optional @network_proxy
proxy_tls tls recommended @network_proxy
proxy_traffic network_traffic recommended @network_proxy
raw_data string_t optional
risk_details string_t optional @security_control
risk_level string_t optional @security_control
risk_level_id integer_t optional @security_control
risk_score integer_t optional @security_control
severity string_t optional
severity_id integer_t required
src_endpoint network_endpoint recommended
start_time timestamp_t optional
status string_t recommended
status_code string_t recommended
status_detail string_t recommended
status_id integer_t recommended
time timestamp_t required
timezone_offset integer_t recommended
tls tls optional
traffic network_traffic recommended
type_name string_t optional
type_uid long_t required
unmapped object optional
url url recommended
[network_endpoint]
agent_list agent[] optional
autonomous_system autonomous_system optional
container container recommended
domain string_t optional
hostname hostname_t recommended
hw_info device_hw_info optional
instance_uid string_t recommended
interface_name string_t recommended
interface_uid string_t recommended
intermediate_ips ip_t[] optional
ip ip_t recommended
location location optional
mac mac_t optional
name string_t recommended
namespace_pid integer_t recommended
os os optional
owner user recommended
port port_t recommended
proxy_endpoint network_proxy optional
subnet_uid string_t optional
svc_name string_t recommended
type string_t optional
type_id integer_t recommended
uid string_t recommended
vlan_uid string_t optional
vpc_uid string_t optional
zone string_t optional
[network_connection_info]
boundary string_t optional
boundary_id integer_t recommended
community_uid string_t optional
direction string_t optional
direction_id integer_t required
flag_history string_t optional
protocol_name string_t recommended
protocol_num integer_t recommended
protocol_ver string_t optional
protocol_ver_id integer_t recommended
session session optional
tcp_flags integer_t optional
uid string_t recommended
[network_traffic]
bytes long_t recommended
bytes_in long_t optional
bytes_missed long_t optional
bytes_out long_t optional
chunks long_t optional
chunks_in long_t optional
chunks_out long_t optional
packets long_t recommended
packets_in long_t optional
packets_out long_t optional
[firewall_rule]
category string_t optional
condition string_t optional
desc string_t optional
duration long_t optional
match_details string_t[] optional
match_location string_t optional
name string_t recommended
rate_limit integer_t optional
sensitivity string_t optional
type string_t optional
uid string_t recommended
version string_t optional
[metadata]
correlation_uid string_t optional
data_classification data_classification recommended
data_classifications data_classification[] recommended
debug string_t[] optional
event_code string_t optional
extension extension optional
extensions extension[] optional
labels string_t[] optional
log_level string_t optional
log_name string_t recommended
log_provider string_t recommended
log_version string_t optional
logged_time timestamp_t optional
loggers logger[] optional
modified_time timestamp_t optional
original_time string_t recommended
processed_time timestamp_t optional
product product required
profiles string_t[] optional
sequence integer_t optional
tags key_value_object[] optional
tenant_uid string_t recommended
uid string_t optional
version string_t required
[product]
cpe_name string_t optional
data_classification data_classification recommended
data_classifications data_classification[] recommended
feature feature optional
lang string_t optional
name string_t recommended
path string_t optional
uid string_t recommended
url_string url_t optional
vendor_name string_t recommended
version string_t recommended
[enrichment]
created_time timestamp_t recommended
data json_t required
desc string_t optional
name string_t required
provider string_t recommended
reputation reputation optional
short_desc string_t recommended
src_url url_t recommended
type string_t recommended
value string_t required
[observable]
name string_t recommended
reputation reputation optional
type string_t optional
type_id integer_t required
value string_t optional
"""

OCSF_ENUMS: dict[tuple[str, str], dict[int, str]] = {
    ("network_activity", "activity_id"): {
        0: "Unknown", 1: "Open", 2: "Close", 3: "Reset", 4: "Fail", 5: "Refuse", 6: "Traffic",
        7: "Listen", 99: "Other",
    },
    ("network_activity", "category_uid"): {4: "Network Activity"},
    ("network_activity", "class_uid"): {4001: "Network Activity"},
    ("network_activity", "severity_id"): {
        0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical",
        6: "Fatal", 99: "Other",
    },
    ("network_activity", "status_id"): {0: "Unknown", 1: "Success", 2: "Failure", 99: "Other"},
    ("network_activity", "action_id"): {
        0: "Unknown", 1: "Allowed", 2: "Denied", 3: "Observed", 4: "Modified", 99: "Other",
    },
    ("network_activity", "disposition_id"): {
        0: "Unknown", 1: "Allowed", 2: "Blocked", 3: "Quarantined", 4: "Isolated", 5: "Deleted",
        6: "Dropped", 7: "Custom Action", 8: "Approved", 9: "Restored", 10: "Exonerated",
        11: "Corrected", 12: "Partially Corrected", 13: "Uncorrected", 14: "Delayed",
        15: "Detected", 16: "No Action", 17: "Logged", 18: "Tagged", 19: "Alert", 20: "Count",
        21: "Reset", 22: "Captcha", 23: "Challenge", 24: "Access Revoked", 25: "Rejected",
        26: "Unauthorized", 27: "Error", 99: "Other",
    },
    ("network_connection_info", "direction_id"): {
        0: "Unknown", 1: "Inbound", 2: "Outbound", 3: "Lateral", 99: "Other",
    },
    ("network_connection_info", "boundary_id"): {
        0: "Unknown", 1: "Localhost", 2: "Internal", 3: "External", 4: "Same VPC",
        5: "Internet/VPC Gateway", 6: "Virtual Private Gateway", 7: "Intra-region VPC",
        8: "Inter-region VPC", 9: "Local Gateway", 10: "Gateway VPC", 11: "Internet Gateway",
        99: "Other",
    },
    ("observable", "type_id"): {
        0: "Unknown", 1: "Hostname", 2: "IP Address", 3: "MAC Address", 4: "User Name",
        5: "Email Address", 6: "URL String", 7: "File Name", 8: "Hash", 9: "Process Name",
        10: "Resource UID", 11: "Port", 12: "Subnet", 99: "Other",
    },
}  # fmt: skip
"""Enums of the attributes this export sets, with the captions of their sibling attributes."""

OCSF_SIBLINGS = {
    "activity_id": "activity_name",
    "category_uid": "category_name",
    "class_uid": "class_name",
    "severity_id": "severity",
    "status_id": "status",
    "action_id": "action",
    "disposition_id": "disposition",
    "direction_id": "direction",
    "boundary_id": "boundary",
    "type_id": "type",
}

OCSF_AT_LEAST_ONE = {
    "network_activity": ("dst_endpoint", "src_endpoint"),
    "network_endpoint": (
        "ip", "uid", "name", "hostname", "svc_name", "instance_uid", "interface_uid",
        "interface_name", "domain",
    ),
    "firewall_rule": ("name", "uid"),
    "product": ("name", "uid"),
}  # fmt: skip


@dataclass(frozen=True)
class Attribute:
    type: str
    array: bool
    requirement: str
    profile: str | None


def ocsf_spec() -> dict[str, dict[str, Attribute]]:
    objects: dict[str, dict[str, Attribute]] = {}
    current: dict[str, Attribute] = {}
    for line in OCSF_1_4_0.strip().splitlines():
        if line.startswith("["):
            current = objects.setdefault(line.strip("[]"), {})
            continue
        name, kind, requirement, *rest = line.split()
        current[name] = Attribute(
            kind.removesuffix("[]"),
            kind.endswith("[]"),
            requirement,
            rest[0].removeprefix("@") if rest else None,
        )
    return objects


def _scalar_problem(kind: str, value: Any) -> str | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if kind in ("string_t", "hostname_t", "url_t", "mac_t", "subnet_t", "username_t"):
        return None if isinstance(value, str) else "not a string"
    if kind == "ip_t":
        if not isinstance(value, str) or len(value) > 40:
            return "not an IP address"
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "not an IP address"
        return None
    if kind == "port_t":
        return None if is_int and 0 <= value <= 65535 else "not a port"
    if kind == "integer_t":
        return None if is_int and -(2**31) <= value < 2**31 else "not a 32-bit integer"
    if kind in ("long_t", "timestamp_t"):
        return None if is_int and -(2**63) <= value < 2**63 else "not a 64-bit integer"
    if kind == "float_t":
        return (
            None
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else "not a number"
        )
    if kind == "boolean_t":
        return None if isinstance(value, bool) else "not a boolean"
    if kind == "json_t":
        return None
    if kind == "object":
        return None if isinstance(value, dict) else "not an object"
    return f"type {kind} not transcribed"


def ocsf_problems(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` departs from OCSF 1.4.0 Network Activity (empty when it is valid)."""
    spec = ocsf_spec()
    profiles = set((event.get("metadata") or {}).get("profiles") or [])
    problems: list[str] = []

    def check(obj: str, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            problems.append(f"{where}: not an object")
            return
        declared = spec[obj]
        for name, attribute in declared.items():
            applies = attribute.profile is None or attribute.profile in profiles
            if attribute.requirement == "required" and applies and name not in data:
                problems.append(f"{where}.{name}: required, missing")
        for name, value in data.items():
            at = f"{where}.{name}"
            attribute = declared.get(name)
            if attribute is None:
                problems.append(f"{at}: not an attribute of {obj}")
                continue
            if attribute.profile is not None and attribute.profile not in profiles:
                problems.append(f"{at}: needs the {attribute.profile} profile in metadata.profiles")
            if value is None:
                problems.append(f"{at}: null")
                continue
            values = value if attribute.array else [value]
            if attribute.array and not isinstance(value, list):
                problems.append(f"{at}: not an array")
                continue
            for item in values:
                if attribute.type in spec:
                    check(attribute.type, item, at)
                elif (problem := _scalar_problem(attribute.type, item)) is not None:
                    problems.append(f"{at}: {problem} ({item!r})")
            enum = OCSF_ENUMS.get((obj, name))
            if enum is not None:
                if value not in enum:
                    problems.append(f"{at}: {value!r} not in the enum")
                elif (
                    (sibling := OCSF_SIBLINGS.get(name))
                    and value != 99
                    and sibling in data
                    and data[sibling] != enum[value]
                ):
                    problems.append(f"{where}.{sibling}: {data[sibling]!r} != {enum[value]!r}")
            elif name.endswith("_id"):
                problems.append(f"{at}: enum not transcribed")
        needs = OCSF_AT_LEAST_ONE.get(obj)
        if needs and not any(n in data for n in needs):
            problems.append(f"{where}: needs one of {', '.join(needs)}")

    check("network_activity", event, "event")
    if event.get("type_uid") != event.get("class_uid", 0) * 100 + event.get("activity_id", -1):
        problems.append("event.type_uid: not class_uid * 100 + activity_id")
    elif "type_name" in event:
        name = f"{event.get('class_name')}: {event.get('activity_name')}"
        if event["type_name"] != name:
            problems.append(f"event.type_name: {event['type_name']!r} != {name!r}")
    if (event.get("metadata") or {}).get("version") != "1.4.0":
        problems.append("event.metadata.version: not 1.4.0")
    return problems


def ocsf_lines(path: Path) -> list[dict[str, Any]]:
    return jsonl_rows(path)


def test_every_ocsf_event_of_the_sample_is_valid_network_activity_1_4_0() -> None:
    events = ocsf_lines(exported("ocsf")["ocsf"])
    assert OCSF_VERSION == "1.4.0" and len(events) == 55
    for event in events:
        assert ocsf_problems(event) == [], event["unmapped"]["correlate"]["event_id"]


def test_every_ocsf_event_of_hostile_text_and_of_aligned_clocks_is_valid() -> None:
    hostile = open_case(hostile_case()).analyse(RunOptions())
    shifted = open_case(sample_case()).analyse(RunOptions(offsets=(("alibaba_cfw", 2.5),)))
    events = ocsf_records(hostile) + ocsf_records(shifted)
    assert events
    for event in events:
        assert ocsf_problems(json.loads(json.dumps(event))) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda e: e.update(labels=["x"]), "event.labels: not an attribute of network_activity"),
        (lambda e: e.pop("severity_id"), "event.severity_id: required, missing"),
        (lambda e: e.update(severity="Low"), "event.severity: 'Low' != "),
        (lambda e: e.update(status_id=7), "event.status_id: 7 not in the enum"),
        (lambda e: e["metadata"].update(profiles=[]), "needs the security_control profile"),
        (lambda e: e["src_endpoint"].update(ip="999.1.1.1"), "event.src_endpoint.ip: not an IP"),
        (lambda e: e["dst_endpoint"].update(port=70000), "event.dst_endpoint.port: not a port"),
        (lambda e: e["connection_info"].pop("direction_id"), "direction_id: required, missing"),
        (lambda e: e["observables"][0].pop("type_id"), "observables.type_id: required"),
        (lambda e: e.update(time="2025-12-02"), "event.time: not a 64-bit integer"),
        (lambda e: e.update(type_uid=400101), "event.type_uid: not class_uid * 100"),
        (lambda e: e.update(is_alert="yes"), "event.is_alert: not a boolean"),
    ],
)
def test_the_validator_catches_what_the_schema_forbids(change: Any, problem: str) -> None:
    event = json.loads(json.dumps(ocsf_records(sample_result())[0]))
    assert ocsf_problems(event) == []
    change(event)
    assert any(problem in p for p in ocsf_problems(event)), ocsf_problems(event)


def test_is_alert_only_on_alerted_events_and_status_from_the_verdict() -> None:
    events = ocsf_lines(exported("ocsf")["ocsf"])
    by_verdict: dict[int, set[Any]] = {}
    for event in events:
        alerted = event["disposition_id"] == 19
        assert ("is_alert" in event) == alerted and event.get("is_alert", True) is True
        by_verdict.setdefault(event["disposition_id"], set()).add(event["status_id"])
    assert by_verdict == {2: {2}, 19: {1}}  # denied: Failure; alerted: Success
    assert sum("is_alert" in e for e in events) == 40


@pytest.mark.parametrize(
    ("labels", "confidence", "severity"),
    [
        (["exfiltration"], "high", (5, "Critical")),
        (["reverse_tunnel"], "high", (4, "High")),
        (["mining"], "medium", (3, "Medium")),
        (["internal_probe"], "high", (3, "Medium")),
        (["internal_probe", "mining"], "high", (4, "High")),
        (["reverse_tunnel"], "none", (2, "Low")),
        ([], "high", (2, "Low")),
        ([], "none", (1, "Informational")),
        (["internal_probe"], "low", (1, "Informational")),
    ],
)
def test_severity_comes_from_the_labels_and_the_confidence(
    labels: list[str], confidence: str, severity: tuple[int, str]
) -> None:
    assert ocsf_severity(labels, confidence) == severity


def test_ocsf_severity_and_observables_of_the_sample() -> None:
    events = ocsf_lines(exported("ocsf")["ocsf"])
    for event in events:
        mine = event["unmapped"]["correlate"]
        assert (event["severity_id"], event["severity"]) == ocsf_severity(
            mine.get("labels", []), mine["confidence"]
        )
        values = {(o["name"], o["value"]) for o in event["observables"]}
        expected = {
            ("src_endpoint.ip", event["src_endpoint"]["ip"]),
            ("dst_endpoint.ip", event["dst_endpoint"]["ip"]),
        }
        for name in ("hostname",):
            for side in ("src_endpoint", "dst_endpoint"):
                if name in event[side]:
                    expected.add((f"{side}.{name}", event[side][name]))
        for nat in event["src_endpoint"].get("intermediate_ips", []):
            expected.add(("src_endpoint.intermediate_ips", nat))
        assert values == expected
    severities = {e["severity_id"] for e in events}
    assert severities == {1, 3, 4}  # unattributed, probes, tunnel and miner
    miner = next(e for e in events if e["dst_endpoint"].get("hostname") == "pool.supportxmr.com")
    assert {"type_id": 1, "type": "Hostname", "name": "dst_endpoint.hostname",
            "value": "pool.supportxmr.com"} in miner["observables"]  # fmt: skip
    assert miner["metadata"]["labels"] == ["mining"] and miner["severity"] == "High"


# --- Timesketch and the shared clock --------------------------------------------------------


def test_timesketch_holds_every_call_of_the_involved_episodes_with_tags() -> None:
    result = sample_result()
    lines = jsonl_rows(exported("timesketch")["timesketch"])
    calls = [r for r in lines if r["data_type"] == "correlate:tool_call"]
    violations = [r for r in lines if r["data_type"] == "correlate:violation"]
    attributed = {
        (r["run_id"], r["episode_id"]) for r in plain_rows(result.attributions) if r["call_id"]
    }
    candidates = {
        (r["run_id"], r["episode_id"]) for r in plain_rows(result.candidates) if r["call_id"]
    }
    episodes = involved_episodes(result)
    assert attributed | candidates <= episodes and len(episodes) == 3
    every = {
        (c["run_id"], c["episode_id"], c["call_id"], c["source_line"])
        for c in plain_rows(result.loaded.calls)
        if (c["run_id"], c["episode_id"]) in episodes
    }
    assert {(c["run_id"], c["episode_id"], c["call_id"], c["source_line"]) for c in calls} == every
    assert len(calls) > 150 and len(violations) == 55  # not only the 75 candidate pairs
    labels = {r["conversation_id"]: r["labels"] for r in plain_rows(result.findings)}
    for line in lines:
        assert isinstance(line["tag"], list) and "labels" not in line and line["clock"] == "aligned"
    for v in violations:
        assert v["tag"] == [x for x in (labels[v["conversation_id"]] or "").split(",") if x]
    miner = next(c for c in calls if c["call_id"] == MINER_CALL)
    assert miner["tag"] == ["mining"] and len(miner["attributed_events"]) == 40
    quiet = [c for c in calls if not c.get("attributed_events")]
    assert quiet and all(c["tag"] == [] for c in quiet)


def test_ocsf_and_timesketch_are_on_the_same_aligned_clock() -> None:
    result = open_case(sample_case()).analyse(RunOptions(offsets=(("alibaba_cfw", 2.5),)))
    aligned = {r["event_id"]: r["ts"] for r in plain_rows(result.attributions)}
    ocsf = {e["unmapped"]["correlate"]["event_id"]: e for e in ocsf_records(result)}
    sketch = {
        r["event_id"]: r
        for r in timesketch_records(result)
        if r["data_type"] == "correlate:violation"
    }
    assert set(ocsf) == set(sketch) == set(aligned)
    for event_id, ts in aligned.items():
        event, line = ocsf[event_id], sketch[event_id]
        assert event["time"] == ts // 1_000_000 == line["timestamp"] // 1000
        assert line["time_ns"] == event["unmapped"]["correlate"]["time_ns"] == ts
        logged = ts + 2_500_000_000
        assert event["metadata"]["original_time"] == line["logged_time"] == format_time(logged)
        assert event["unmapped"]["correlate"]["logged_time_ns"] == logged
        assert event["unmapped"]["correlate"]["clock"] == line["clock"] == "aligned"


def test_ocsf_and_timesketch_provenance_say_which_clock() -> None:
    for fmt in ("ocsf", "timesketch"):
        path = exported(fmt)[fmt]
        provenance = json.loads(path.with_name(f"sample.{fmt}.provenance.json").read_text())
        assert provenance["export"]["clock"].startswith("aligned: the trajectories' clock")


# --- determinism ----------------------------------------------------------------------------


def _bytes(paths: dict[str, Path]) -> Iterator[tuple[str, bytes]]:
    for name, path in sorted(paths.items()):
        yield name, path.read_bytes()


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "ocsf", "timesketch"])
def test_two_analyses_of_the_same_case_export_the_same_bytes(fmt: str) -> None:
    outputs = []
    for attempt in ("a", "b"):
        result = open_case(sample_case()).analyse(RunOptions(), cache=False)
        work = scratch(f"same-{fmt}-{attempt}")
        paths = export(result, fmt, work / f"out.{fmt}", permutations=PERMUTATIONS)
        outputs.append(dict(_bytes(paths)))
    assert outputs[0] == outputs[1]
    assert set(outputs[0]) >= ({fmt} if fmt in ("ocsf", "timesketch") else set(TABLES[:3]))
