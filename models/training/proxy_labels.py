#!/usr/bin/env python3
"""Build the proxy-labelled training set for vigil's default alert risk model.

Usage (from anywhere):
    python3 models/training/proxy_labels.py [SHARED_DATA_DIR]

SHARED_DATA_DIR defaults to ../shared/data relative to the repository root.
Writes models/training/alerts-labelled.jsonl.gz (gzip with mtime 0, so the
bytes are reproducible) and prints the counts quoted in README.md.

There are no real SOC dispositions in the data, so labels are PROXY labels
derived from the rule that fired (see README.md for the exact rules). Each
output line is
    {"label": "malicious"|"benign", "source": "<file>:<line>",
     "split": "train"|"test", "alert": <the original alert document>}
Python 3 standard library only; deterministic (fixed seed, hash-based split).
"""
import csv
import gzip
import hashlib
import io
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

SEED = 1337
MAX_ROWS = 6000
PER_SIGNATURE_CAP = 1000  # max rows per Suricata signature from the shipped-rules set
REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "models" / "training" / "alerts-labelled.jsonl.gz"

EVE = "suricata-eve/eve.json.gz"
EVE_INDEX = "suricata-eve/eve-index.csv"
SHIP = "suricata-eve-shipped-rules/alerts.json.gz"
SHIP_INDEX = "suricata-eve-shipped-rules/alerts-index.csv"
WAZUH_GLOB = "wazuh/*.json"

# ---------------------------------------------------------------- Suricata rules
# 1. suricata-verify unit-test rules (the word test/testcase, or an empty signature)
#    say nothing about the traffic: ambiguous, whatever their category.
TEST_RULE = re.compile(r"\btest(case)?s?\b|^\s*$", re.I)
# 2. signature names that mark known-bad traffic.
MAL_SIGNATURE = re.compile(
    r"^(ET|ETPRO) (TROJAN|MALWARE|MOBILE_MALWARE|ADWARE_PUP|EXPLOIT|EXPLOIT_KIT|CNC|BOTCC|"
    r"WEB_SERVER|WEB_SPECIFIC_APPS|WEB_CLIENT|ATTACK_RESPONSE|SHELLCODE|COMPROMISED|DROP|"
    r"PHISHING|CURRENT_EVENTS|WORM|COINMINER)\b"
    r"|^GPL (ATTACK_RESPONSE|EXPLOIT|SHELLCODE|WEB_SERVER|TROJAN|NETBIOS)\b"
    r"|^(MALWARE|EXPLOIT|SERVER|OS|BROWSER|FILE)-[A-Z]+ "
    r"|^EXPLOIT\b"
    r"|\b(trojan|backdoor|ransomware|webshell|shellcode|command and control|cnc|c2|"
    r"credential theft|cobalt ?strike|mimikatz|meterpreter)\b",
    re.I,
)
# 3. classtype categories that mean an attack/compromise.
MAL_CATEGORY = {
    "A Network Trojan was detected",
    "Web Application Attack",
    "Attempted Administrator Privilege Gain",
    "Successful Administrator Privilege Gain",
    "Attempted User Privilege Gain",
    "Successful User Privilege Gain",
    "Executable code was detected",
    "Malware Command and Control Activity Detected",
    "Exploit Kit Activity Detected",
    "Domain Observed Used for C2 Detected",
    "Successful Credential Theft Detected",
    "Targeted Malicious Activity was Detected",
    "Crypto Currency Mining Activity Detected",
}
# 4. engine-generated decoder/stream/app-layer events ("SURICATA ...") and
#    housekeeping categories are benign noise ...
BENIGN_CATEGORY = {"Generic Protocol Command Decode", "Not Suspicious Traffic", "Misc activity", "Unknown Traffic"}
#    ... except engine events whose names describe an evasion/injection attempt.
EVASION = re.compile(r"evasion|injection|with different data", re.I)

# ---------------------------------------------------------------- Wazuh rules
MAL_TACTICS = {
    "Credential Access",
    "Execution",
    "Lateral Movement",
    "Command and Control",
    "Exfiltration",
    "Privilege Escalation",
}


def label_suricata(doc):
    """Return (label or None, reason)."""
    a = doc.get("alert") or {}
    sig = a.get("signature", "") or ""
    cat = a.get("category", "") or ""
    if TEST_RULE.search(sig):
        return None, "ambiguous: unit-test rule / empty signature"
    if MAL_SIGNATURE.search(sig):
        return "malicious", "malicious: signature name"
    if cat in MAL_CATEGORY:
        return "malicious", "malicious: category"
    if sig.startswith("SURICATA "):
        if EVASION.search(sig):
            return None, "ambiguous: engine event naming evasion/injection"
        return "benign", "benign: SURICATA engine anomaly"
    if cat in BENIGN_CATEGORY:
        return "benign", "benign: category"
    return None, "ambiguous: no rule matched"


def label_wazuh(doc):
    r = doc.get("rule") or {}
    level = r.get("level")
    level = int(level) if isinstance(level, (int, str)) and str(level).isdigit() else None
    mitre = r.get("mitre") or {}
    tactics = set(mitre.get("tactic") or [])
    has_technique = bool(mitre.get("id") or mitre.get("technique"))
    if level is not None and level >= 10:
        return "malicious", "malicious: rule.level >= 10"
    if tactics & MAL_TACTICS:
        return "malicious", "malicious: rule.mitre tactic"
    if level is not None and level <= 5 and not has_technique:
        return "benign", "benign: rule.level <= 5, no mitre"
    return None, "ambiguous: level 6-9 or other mitre tactic"


def read_lines(path):
    data = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def line_to_pcap(data, index, count_field):
    """Map 1-based line numbers to the pcap that produced them."""
    m = {}
    for r in csv.DictReader(open(data / index, newline="")):
        first = int(r["first_line"])
        for ln in range(first, first + int(r[count_field])):
            m[ln] = r["pcap"]
    return m


def split_of(group):
    return "test" if int(hashlib.sha256(group.encode()).hexdigest()[:12], 16) % 5 == 0 else "train"


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else (REPO / ".." / "shared" / "data")
    data = data.resolve()
    reasons = Counter()
    dups = Counter()
    rows = []  # (dataset, source, label, group, doc)
    seen_raw = set()
    seen_event = set()

    for rel, index, field in ((EVE, EVE_INDEX, "n_lines"), (SHIP, SHIP_INDEX, "n_alerts")):
        pcap_of = line_to_pcap(data, index, field)
        for ln, raw in enumerate(read_lines(data / rel), 1):
            doc = json.loads(raw)
            if doc.get("event_type") != "alert":
                continue
            label, why = label_suricata(doc)
            reasons[(rel, why)] += 1
            if label is None:
                continue
            a = doc["alert"]
            # the same packet seen by both runs (eve and shipped-rules share pcaps)
            ev = (doc.get("timestamp"), doc.get("pcap_cnt"), doc.get("src_ip"), doc.get("src_port"),
                  doc.get("dest_ip"), doc.get("dest_port"), a.get("gid"), a.get("signature_id"), a.get("signature"))
            if raw in seen_raw or ev in seen_event:
                dups[rel] += 1
                continue
            seen_raw.add(raw)
            seen_event.add(ev)
            rows.append((rel, f"{rel}:{ln}", label, "pcap:" + pcap_of[ln], doc))

    for f in sorted(data.glob(WAZUH_GLOB)):
        rel = str(f.relative_to(data))
        for ln, raw in enumerate(read_lines(f), 1):
            doc = json.loads(raw)
            label, why = label_wazuh(doc)
            reasons[(rel, why)] += 1
            if label is None:
                continue
            if raw in seen_raw:
                dups[rel] += 1
                continue
            seen_raw.add(raw)
            rows.append((rel, f"{rel}:{ln}", label, f"{rel}:{ln}", doc))

    # ---- cap: keep everything except the shipped-rules benign flood, which is
    # limited per signature and then sampled down to fit MAX_ROWS.
    rng = random.Random(SEED)
    keep = [r for r in rows if not (r[0] == SHIP and r[2] == "benign")]
    flood = [r for r in rows if r[0] == SHIP and r[2] == "benign"]
    by_sig = defaultdict(list)
    for r in flood:
        by_sig[r[4]["alert"]["signature"]].append(r)
    capped = []
    for sig in sorted(by_sig):
        lst = by_sig[sig]
        capped.extend(lst if len(lst) <= PER_SIGNATURE_CAP else rng.sample(lst, PER_SIGNATURE_CAP))
    room = MAX_ROWS - len(keep)
    n_flood_before_cap = len(flood)
    if len(capped) > room:
        capped = rng.sample(capped, room)
    order = {k: i for i, k in enumerate([EVE, SHIP])}
    final = keep + capped
    final.sort(key=lambda r: (order.get(r[0], 9), r[0], int(r[1].rsplit(":", 1)[1])))

    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for ds, src, label, group, doc in final:
            row = {"label": label, "source": src, "split": split_of(group), "alert": doc}
            gz.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n")
    OUT.write_bytes(buf.getvalue())

    # ---- report
    print(f"wrote {OUT.relative_to(REPO)}: {len(final)} rows, {len(buf.getvalue())} bytes gzipped")
    print("\nlabelling outcome per source (before dedup/cap):")
    for (rel, why), n in sorted(reasons.items()):
        print(f"  {rel:50s} {why:50s} {n}")
    print("\nduplicates dropped:", dict(dups))
    print(f"shipped-rules benign: {n_flood_before_cap} labelled -> {len(capped)} kept "
          f"(per-signature cap {PER_SIGNATURE_CAP}, then seeded sample, seed {SEED})")
    tab = Counter()
    for ds, src, label, group, doc in final:
        sp = split_of(group)
        tab[(ds, label, sp)] += 1
        tab[("ALL", label, sp)] += 1
    print("\nrows per source / label / split:")
    for k in sorted(tab):
        print(f"  {k[0]:50s} {k[1]:10s} {k[2]:5s} {tab[k]}")


if __name__ == "__main__":
    main()
