"""Network indicators in a tool call's text, and how they match a violation's destination.

A destination the call names (its IP address, a network holding it, its domain) is the strongest
evidence there is that the call caused the traffic. Patterns (an ``ssh -R`` tunnel, a stratum URL,
a reverse shell, a scanner) say what kind of traffic the call would cause, which classify.py's
labels can then agree or disagree with. Base64 payloads are decoded (one level) and searched too.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass, field
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?::(\d{1,5}))?(?![\w.])")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?:/(\d{1,3}))?(?![0-9A-Fa-f:])"
)
_BRACKETED_V6 = re.compile(r"\[([0-9A-Fa-f:]+)\](?::(\d{1,5}))?")
_URL = re.compile(
    r"\b([a-z][a-z0-9+.-]{1,20})://([^\s/:'\"@]+@)?(\[[0-9A-Fa-f:]+\]|[^\s/:'\"?#]+)(?::(\d{1,5}))?",
    re.I,
)
_DOMAIN = re.compile(
    r"(?<![\w.-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,23})(?::(\d{1,5}))?(?![\w-])",
    re.I,
)
_USER_AT_HOST = re.compile(r"\b[\w.-]+@([a-z0-9.-]+\.[a-z]{2,24}|\d{1,3}(?:\.\d{1,3}){3})\b", re.I)
_PORT_FLAG = re.compile(r"(?:^|\s)(?:-p|--port|-P)\s*(\d{1,5})\b")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")

# Extensions that look like TLDs in shell text but name files (solve.py, data.json, ...).
_FILE_SUFFIXES = frozenset(
    [
        "py",
        "pyc",
        "sh",
        "bash",
        "txt",
        "json",
        "jsonl",
        "md",
        "log",
        "gz",
        "tgz",
        "bz2",
        "xz",
        "zst",
        "tar",
        "zip",
        "csv",
        "tsv",
        "yaml",
        "yml",
        "toml",
        "cfg",
        "ini",
        "conf",
        "so",
        "o",
        "c",
        "h",
        "cc",
        "cpp",
        "hpp",
        "js",
        "ts",
        "tsx",
        "jsx",
        "html",
        "htm",
        "css",
        "lock",
        "whl",
        "egg",
        "rs",
        "go",
        "java",
        "class",
        "jar",
        "rb",
        "pl",
        "php",
        "sql",
        "db",
        "sqlite",
        "pem",
        "key",
        "crt",
        "pub",
        "out",
        "err",
        "tmp",
        "bak",
        "swp",
        "ipynb",
        "parquet",
        "arrow",
        "pkl",
        "pt",
        "pth",
        "bin",
        "dat",
        "lst",
        "patch",
        "diff",
        "service",
        "socket",
        "timer",
        "mod",
        "sum",
        "env",
        "xml",
        "svg",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "pdf",
        "doc",
        "docx",
        "xls",
        "xlsx",
        "ppt",
        "pptx",
        "rst",
        "tex",
        "cmake",
        "make",
        "mk",
        "am",
        "in",
        "ac",
        "m4",
        "spec",
        "rpm",
        "deb",
        "apk",
        "exe",
        "dll",
        "app",
        "dmg",
        "iso",
        "img",
        "vmdk",
        "qcow2",
        "local",
        "internal",
        "cache",
        "lib",
        "dir",
    ]
)

PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "ssh_tunnel",
        re.compile(
            r"\b(?:auto)?ssh\b[^|;&\n]*?\s-[A-Za-z]*[RLD]\s*\S|\bautossh\b|RemoteForward|LocalForward|DynamicForward",
            re.I,
        ),
    ),
    (
        "reverse_shell",
        re.compile(
            r"/dev/(?:tcp|udp)/|\b(?:nc|ncat|netcat)\b[^|;&\n]*\s-[a-z]*[ec]\b|\bsocat\b[^\n]*\bexec:|\bbash\s+-i\b|\bmkfifo\b[^\n]*\bnc\b|\bpty\.spawn\b",
            re.I,
        ),
    ),
    (
        "download_exec",
        re.compile(
            r"\b(?:curl|wget)\b[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b|\b(?:curl|wget)\b[^;\n]*(?:&&|;)\s*(?:chmod\s+\+x|(?:ba)?sh\s)",
            re.I,
        ),
    ),
    (
        "miner",
        re.compile(
            r"stratum\+(?:tcp|ssl|tls)://|\bxmrig\b|--donate-level|\bminerd\b|\bcpuminer\b|\bethminer\b|\bnbminer\b|\bt-rex\b|\blolminer\b|\b(?:-a|--algo)\s+(?:rx/0|cn/|cryptonight|randomx)",
            re.I,
        ),
    ),
    (
        "tunnel_tool",
        re.compile(
            r"\bchisel\b|\bfrp[cs]\b|\bngrok\b|\bcloudflared\s+tunnel\b|\bbore\s+local\b|\blocaltunnel\b|\blt\s+--port\b|\biodine\b|\bdnscat",
            re.I,
        ),
    ),
    (
        "scanner",
        re.compile(
            r"\bnmap\b|\bmasscan\b|\bzmap\b|\brustscan\b|\b(?:nc|ncat|netcat)\b[^|;&\n]*\s-[a-z]*z|\bfor\b[^\n]*\bdo\b[^\n]*/dev/tcp/",
            re.I,
        ),
    ),
    (
        "metadata",
        re.compile(
            r"169\.254\.169\.254|100\.100\.100\.200|metadata\.google\.internal|fd00:ec2::254|/latest/meta-data|/computeMetadata/",
            re.I,
        ),
    ),
    (
        "upload",
        re.compile(
            r"\bcurl\b[^\n]*(?:\s-T\s|--upload-file|\s-F\s|--data-binary\s+@|\s-d\s+@)|\bscp\b|\brsync\b[^\n]*:|\bnc\b[^\n]*<",
            re.I,
        ),
    ),
)


@dataclass(frozen=True)
class Indicators:
    """What a call's text names: addresses, networks, domains, ports and behaviour patterns."""

    ips: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    domains: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()
    patterns: frozenset[str] = frozenset()
    decoded: frozenset[str] = field(default=frozenset())
    """Patterns or names found only inside a base64 payload (an attempt to hide them)."""

    @property
    def empty(self) -> bool:
        return not (self.ips or self.networks or self.domains or self.ports or self.patterns)


def _add_ip(text: str, ips: set[str], networks: list[IPNetwork], prefix: str | None = None) -> None:
    try:
        if prefix is not None:
            network = ipaddress.ip_network(f"{text}/{prefix}", strict=False)
            if network.num_addresses > 1:
                networks.append(network)
                return
            ips.add(str(network.network_address))
            return
        ips.add(str(ipaddress.ip_address(text)))
    except ValueError:
        return


def _port(text: str | None, ports: set[int]) -> None:
    if text and text.isdigit() and 0 < int(text) <= 65535:
        ports.add(int(text))


def _scan(text: str) -> tuple[set[str], list[IPNetwork], set[str], set[int], set[str]]:
    ips: set[str] = set()
    networks: list[IPNetwork] = []
    domains: set[str] = set()
    ports: set[int] = set()
    for m in _IPV4.finditer(text):
        _add_ip(m.group(1), ips, networks, m.group(2))
        _port(m.group(3), ports)
    for m in _BRACKETED_V6.finditer(text):
        _add_ip(m.group(1), ips, networks)
        _port(m.group(2), ports)
    for m in _IPV6.finditer(text):
        if m.group(1).count(":") >= 2 and any(c.isalnum() for c in m.group(1)):
            _add_ip(m.group(1), ips, networks, m.group(2))
    for m in _URL.finditer(text):
        host = m.group(3).strip("[]").lower()
        try:
            ips.add(str(ipaddress.ip_address(host)))
        except ValueError:
            if "." in host:
                domains.add(host.rstrip("."))
        _port(m.group(4), ports)
    for m in _USER_AT_HOST.finditer(text):
        host = m.group(1).lower()
        if not host[0].isdigit():
            domains.add(host)
    for m in _DOMAIN.finditer(text):
        name = m.group(1).lower().rstrip(".")
        tld = name.rsplit(".", 1)[-1]
        if tld in _FILE_SUFFIXES or name.replace(".", "").isdigit():
            continue
        domains.add(name)
        _port(m.group(2), ports)
    for m in _PORT_FLAG.finditer(text):
        _port(m.group(1), ports)
    patterns = {name for name, rx in PATTERNS if rx.search(text)}
    return ips, networks, domains, ports, patterns


def _base64_payloads(text: str) -> list[str]:
    """Printable text hidden in base64 tokens (``echo ... | base64 -d | sh``)."""
    found = []
    for token in _BASE64.findall(text):
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if (
            decoded
            and sum(ch.isprintable() or ch in "\n\t" for ch in decoded) / len(decoded) > 0.95
        ):
            found.append(decoded)
    return found


@lru_cache(maxsize=65536)
def extract(text: str | None) -> Indicators:
    """Indicators named in ``text`` (and in base64 payloads inside it, one level deep)."""
    if not text:
        return Indicators()
    ips, networks, domains, ports, patterns = _scan(text)
    hidden: set[str] = set()
    for payload in _base64_payloads(text):
        i2, n2, d2, p2, pat2 = _scan(payload)
        hidden |= {f"{p} (base64)" for p in pat2 - patterns} | {
            f"{x} (base64)" for x in (i2 - ips) | (d2 - domains)
        }
        ips |= i2
        networks += n2
        domains |= d2
        ports |= p2
        patterns |= pat2
    return Indicators(
        ips=frozenset(ips),
        networks=tuple(dict.fromkeys(networks)),
        domains=frozenset(domains),
        ports=frozenset(ports),
        patterns=frozenset(patterns),
        decoded=frozenset(hidden),
    )


def _domain_matches(named: str, destination: str) -> bool:
    return (
        destination == named
        or destination.endswith("." + named)
        or named.endswith("." + destination)
    )


def match_destination(
    found: Indicators, dst_ip: str | None, dst_domain: str | None, dst_port: int | None
) -> str | None:
    """How the indicators name the destination: ``ip``, ``cidr``, ``domain``, ``port``, or None.

    ``port`` alone is weak (a call that names port 22 and opens a tunnel); it is reported only when
    nothing stronger matches and the call has a network pattern.
    """
    if dst_ip:
        if dst_ip in found.ips:
            return "ip"
        if found.networks:
            try:
                target = ipaddress.ip_address(dst_ip)
            except ValueError:
                target = None
            if target is not None and any(
                n.version == target.version and n.prefixlen >= 8 and target in n
                for n in found.networks
            ):
                return "cidr"
    if dst_domain:
        domain = dst_domain.lower().rstrip(".")
        if any(_domain_matches(named, domain) for named in found.domains):
            return "domain"
    if dst_port is not None and dst_port in found.ports and found.patterns - {"metadata"}:
        return "port"
    return None


def names_destination(
    text: str | None, dst_ip: str | None, dst_domain: str | None, dst_port: int | None = None
) -> str | None:
    """Shortcut: extract from ``text`` and match (see ``match_destination``)."""
    return match_destination(extract(text), dst_ip, dst_domain, dst_port)
