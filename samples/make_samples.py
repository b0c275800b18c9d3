#!/usr/bin/env python3
"""Build vigil's sample and fixture files from the shared real-data folder.

Usage (from anywhere):
    python3 samples/make_samples.py [SHARED_DATA_DIR]

SHARED_DATA_DIR defaults to ../shared/data relative to the repository root
(the parent of this script's folder). Python 3 standard library only.

Writes (relative to the repository root):
    samples/suricata-eve.json      ~300 Suricata EVE lines (byte-exact copies)
    samples/wazuh-alerts.json      120 Wazuh alerts.json lines (byte-exact copies)
    tests/fixtures/suricata-alert.json   3 byte-exact Suricata alert lines
    tests/fixtures/wazuh-alert.json      3 byte-exact Wazuh alert lines
    tests/fixtures/malformed.json        good lines mixed with deliberately broken ones

Every choice is fixed (first occurrence in file order) or drawn from
random.Random(SEED), so re-running on the same data gives identical bytes.
Lines are copied as raw bytes; nothing is parsed and re-serialised, except in
malformed.json where the broken lines are made on purpose (see
tests/fixtures/ATTRIBUTION.md).
"""
import csv
import gzip
import json
import random
import re
import sys
from pathlib import Path

SEED = 20240521
REPO = Path(__file__).resolve().parent.parent

EVE = "suricata-eve/eve.json.gz"
EVE_INDEX = "suricata-eve/eve-index.csv"
SHIP = "suricata-eve-shipped-rules/alerts.json.gz"
LIVE = "suricata-live-loopback-eve.json"
WAZUH_GLOB = "wazuh/*.json"

# Signature names that look like they come from a real ruleset (ET Open,
# Snort/Talos, GPL) rather than from a suricata-verify unit-test rule.
REAL_RULESET = re.compile(rb"^(ET|ETPRO|GPL|MALWARE|EXPLOIT)[ -]")
NON_ALERT_TYPES = ("flow", "dns", "http")


def read_lines(path):
    """Return the file's lines as raw bytes (without the trailing newline)."""
    data = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def ts_key(raw_ts):
    """Sortable key for '2010-01-04T17:29:26.981507+0000' (6 or 7 fraction digits)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?([+-]\d{4})$", raw_ts)
    if not m:
        return (raw_ts, 0.0)
    base, frac, off = m.groups()
    assert off == "+0000", raw_ts  # all source data is UTC
    return (base, float("0." + (frac or "0")))


class Pick:
    """An ordered, de-duplicated set of (source, line_no) picks."""

    def __init__(self):
        self.items = []
        self.seen = set()
        self.seen_bytes = set()

    def add(self, src, lineno, raw):
        if (src, lineno) in self.seen or raw in self.seen_bytes:
            return False
        self.seen.add((src, lineno))
        self.seen_bytes.add(raw)
        self.items.append((src, lineno, raw))
        return True


def suricata_sample(data):
    rng = random.Random(SEED)
    eve = read_lines(data / EVE)
    ship = read_lines(data / SHIP)
    live = read_lines(data / LIVE)
    eve_docs = [json.loads(l) for l in eve]
    ship_docs = [json.loads(l) for l in ship]
    live_docs = [json.loads(l) for l in live]
    pick = Pick()
    stats = {}

    eve_alerts = [(i, d) for i, d in enumerate(eve_docs) if d.get("event_type") == "alert"]

    # A. every eve alert with a non-empty category other than the decoder class
    #    (trojan, web application attack, privilege gain, bad traffic, misc, privacy).
    a_lines = []
    for i, d in eve_alerts:
        cat = d["alert"].get("category", "")
        if cat and cat != "Generic Protocol Command Decode":
            pick.add(EVE, i + 1, eve[i])
            a_lines.append(i)
    stats["A eve categorised non-decoder alerts"] = len(a_lines)

    # B. eve decoder/stream anomalies: first occurrence of each distinct signature.
    n = 0
    sigs = set()
    for i, d in eve_alerts:
        a = d["alert"]
        if a.get("category") == "Generic Protocol Command Decode" and a["signature"] not in sigs:
            sigs.add(a["signature"])
            n += pick.add(EVE, i + 1, eve[i])
    stats["B eve decoder anomalies (1 per signature)"] = n

    # C1. eve uncategorised alerts whose names come from real rulesets (ET CNC, EXPLOIT ...).
    n = 0
    for i, d in eve_alerts:
        if not d["alert"].get("category") and REAL_RULESET.match(d["alert"]["signature"].encode()):
            n += pick.add(EVE, i + 1, eve[i])
    # C2. protocol variety: for each app_proto (incl. none), the first 6 uncategorised
    #     alerts with distinct signatures (test rules: EICAR, JA4, ike, quic, mqtt ...).
    per_proto = {}
    used_sigs = set()
    for i, d in eve_alerts:
        a = d["alert"]
        if a.get("category"):
            continue
        proto = d.get("app_proto", "-")
        if per_proto.get(proto, 0) >= 6 or a["signature"] in used_sigs:
            continue
        if pick.add(EVE, i + 1, eve[i]):
            per_proto[proto] = per_proto.get(proto, 0) + 1
            used_sigs.add(a["signature"])
            n += 1
    # C3. the 'blocked' alerts (action=blocked, empty signature) and a few IPv6 alerts.
    for i, d in eve_alerts:
        if d["alert"].get("action") != "allowed":
            n += pick.add(EVE, i + 1, eve[i])
    v6 = [i for i, d in eve_alerts if ":" in d.get("src_ip", "")]
    for i in sorted(rng.sample(v6, 6)):
        n += pick.add(EVE, i + 1, eve[i])
    stats["C eve uncategorised alerts (real-ruleset names, per-protocol variety, blocked, IPv6)"] = n

    # D. shipped-rules alerts: all are SURICATA decoder/stream/app-layer anomalies.
    #    First occurrence of each distinct signature not already taken from eve in B,
    #    6 extra random checksum alerts, one alert without IP fields and the first
    #    line with a 7-digit-fraction timestamp.
    n = 0
    for i, d in enumerate(ship_docs):
        s = d["alert"]["signature"]
        if s not in sigs:
            sigs.add(s)
            n += pick.add(SHIP, i + 1, ship[i])
    checksum = [i for i, d in enumerate(ship_docs) if "checksum" in d["alert"]["signature"]]
    for i in sorted(rng.sample(checksum, 6)):
        n += pick.add(SHIP, i + 1, ship[i])
    for i, d in enumerate(ship_docs):
        if "src_ip" not in d:
            n += pick.add(SHIP, i + 1, ship[i])
            break
    for i, l in enumerate(ship):
        if re.match(rb'\{"timestamp":"[^"]*\.\d{7}\+', l):
            n += pick.add(SHIP, i + 1, ship[i])
            break
    stats["D shipped-rules anomaly alerts (1 per signature not in B, +checksum, no-IP, 7-digit ts)"] = n

    # E. live loopback: all 6 alerts + the first http and the flow line of each alerting flow.
    alert_flows = {d["flow_id"] for d in live_docs if d["event_type"] == "alert"}
    n = 0
    seen_http = set()
    for i, d in enumerate(live_docs):
        et = d["event_type"]
        if et == "alert":
            n += pick.add(LIVE, i + 1, live[i])
        elif d.get("flow_id") in alert_flows and et == "flow":
            n += pick.add(LIVE, i + 1, live[i])
        elif d.get("flow_id") in alert_flows and et == "http" and d["flow_id"] not in seen_http:
            seen_http.add(d["flow_id"])
            n += pick.add(LIVE, i + 1, live[i])
    stats["E live loopback (6 alerts + http/flow)"] = n

    # F. non-alert context from eve: flow/dns/http lines from the same suricata-verify
    #    test as the set-A alerts (at most 2 per test, 24 in all).
    index = list(csv.DictReader(open(data / EVE_INDEX, newline="")))
    ranges = [(int(r["first_line"]) - 1, int(r["first_line"]) - 1 + int(r["n_lines"])) for r in index]
    n = 0
    done_tests = set()
    for i in a_lines:
        if n >= 24:
            break
        for lo, hi in ranges:
            if lo <= i < hi and (lo, hi) not in done_tests:
                done_tests.add((lo, hi))
                k = 0
                for j in range(lo, hi):
                    if eve_docs[j].get("event_type") in NON_ALERT_TYPES and k < 2 and n < 24:
                        if pick.add(EVE, j + 1, eve[j]):
                            k += 1
                            n += 1
    stats["F eve non-alert flow/dns/http context"] = n

    docs = {EVE: eve_docs, SHIP: ship_docs, LIVE: live_docs}
    order = {EVE: 0, SHIP: 1, LIVE: 2}
    items = sorted(
        pick.items,
        key=lambda t: (ts_key(docs[t[0]][t[1] - 1]["timestamp"]), order[t[0]], t[1]),
    )
    return items, stats, docs


def wazuh_sample(data):
    files = sorted(data.glob(WAZUH_GLOB))
    out = []
    for f in files:
        rel = str(f.relative_to(data))
        lines = read_lines(f)
        docs = [json.loads(l) for l in lines]
        # The generator writes 10 modules x 60 lines in blocks. Take 10 per block,
        # 20 from the two mixed blocks (3: sshd/pam/windows auth, 9: syslog/rootcheck
        # rules carrying rule.mitre), round-robin over distinct rule.id in order of
        # first appearance so every rule group in the block is represented.
        for b in range(0, len(lines), 60):
            block = list(range(b, min(b + 60, len(lines))))
            groups = {docs[i]["rule"]["groups"][0] for i in block}
            quota = 20 if len(groups) > 1 else 10
            by_rule = {}
            for i in block:
                by_rule.setdefault(docs[i]["rule"]["id"], []).append(i)
            chosen = []
            depth = 0
            while len(chosen) < quota and any(len(v) > depth for v in by_rule.values()):
                for rid, idxs in by_rule.items():
                    if depth < len(idxs) and len(chosen) < quota:
                        chosen.append(idxs[depth])
                depth += 1
            for i in sorted(chosen):
                out.append((rel, i + 1, lines[i], docs[i]))
    out.sort(key=lambda t: (t[3]["timestamp"], t[0], t[1]))
    return out


# ---------------------------------------------------------------- fixtures

def find_line(lines, docs, pred):
    for i, d in enumerate(docs):
        if pred(d):
            return i
    raise SystemExit("fixture source line not found")


def fixtures(data, docs, out_dir):
    eve = read_lines(data / EVE)
    eve_docs = docs[EVE]
    wfile = sorted(data.glob(WAZUH_GLOB))[0]
    wl = read_lines(wfile)
    wd = [json.loads(l) for l in wl]
    notes = {}

    def is_alert(d):
        return d.get("event_type") == "alert"

    # suricata-alert.json: trojan (with alert.metadata), admin privilege gain (log4j),
    # decoder anomaly over IPv6.
    s1 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"].startswith("MALWARE-CNC"))
    s2 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"].startswith("ET EXPLOIT Apache log4j"))
    s3 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["category"] == "Generic Protocol Command Decode"
                   and ":" in d.get("src_ip", ""))
    (out_dir / "suricata-alert.json").write_bytes(b"".join(eve[i] + b"\n" for i in (s1, s2, s3)))
    notes["suricata-alert.json"] = [(EVE, i + 1) for i in (s1, s2, s3)]

    # wazuh-alert.json: data.srcip (no mitre), rule.mitre (no srcip), syscheck group.
    w1 = find_line(wl, wd, lambda d: "srcip" in d["data"] and "mitre" not in d["rule"] and "sshd" in d["rule"]["groups"])
    w2 = find_line(wl, wd, lambda d: "mitre" in d["rule"] and "srcip" not in d["data"] and d["rule"]["level"] >= 10)
    w3 = find_line(wl, wd, lambda d: "syscheck" in d["rule"]["groups"] or "syscheck" in d)
    (out_dir / "wazuh-alert.json").write_bytes(b"".join(wl[i] + b"\n" for i in (w1, w2, w3)))
    wrel = str(wfile.relative_to(data))
    notes["wazuh-alert.json"] = [(wrel, i + 1) for i in (w1, w2, w3)]

    # malformed.json
    g1 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"] == "ET MALWARE JAWS Webserver Unauthenticated Shell Command Execution")
    g2 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"] == "SURICATA IPv4 invalid checksum")
    g3 = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"] == "GPL ATTACK_RESPONSE id check returned root")
    trunc_src = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"].startswith("ET CNC Shadowserver"))
    utf_src = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"] == "Bad SSH proto 2 detected !!!")
    port_src = find_line(eve, eve_docs, lambda d: is_alert(d) and d["alert"]["signature"].startswith("ET POLICY DCERPC"))
    truncated = eve[trunc_src][: len(eve[trunc_src]) // 2]
    bad_utf8 = eve[utf_src].replace(b"Bad SSH proto 2 detected !!!", b"Bad SSH proto 2 detected \xff\xfe\xc3\x28!!!", 1)
    assert bad_utf8 != eve[utf_src]
    bad_port, k = re.subn(rb'"src_port":\d+', b'"src_port":"abc"', eve[port_src], count=1)
    assert k == 1
    not_json = b"Nov 21 08:43:38 sensor1 suricata[1234]: [Drop] [1:2010935:3] this is a syslog line, not EVE JSON"
    array_line = b"[" + eve[g2] + b"," + eve[g3] + b"]"
    rows = [
        (eve[g1], "good alert (byte-exact)", (EVE, g1 + 1)),
        (truncated, "truncated JSON: first half of a real alert line", (EVE, trunc_src + 1)),
        (eve[g2], "good alert (byte-exact)", (EVE, g2 + 1)),
        (not_json, "not JSON: a made-up syslog-style text line", None),
        (array_line, "a JSON array holding two real alert objects on one line", (EVE, f"{g2 + 1},{g3 + 1}")),
        (b"", "empty line", None),
        (bad_utf8, "real alert with invalid UTF-8 bytes FF FE C3 28 inserted in alert.signature", (EVE, utf_src + 1)),
        (bad_port, 'real alert with src_port rewritten to the string "abc"', (EVE, port_src + 1)),
        (eve[g3], "good alert (byte-exact)", (EVE, g3 + 1)),
    ]
    (out_dir / "malformed.json").write_bytes(b"".join(r[0] + b"\n" for r in rows))
    notes["malformed.json"] = [(r[1], r[2]) for r in rows]
    return notes


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else (REPO / ".." / "shared" / "data")
    data = data.resolve()
    if not (data / EVE).exists():
        raise SystemExit(f"shared data not found at {data}")
    samples = REPO / "samples"
    fixdir = REPO / "tests" / "fixtures"
    samples.mkdir(exist_ok=True)
    fixdir.mkdir(parents=True, exist_ok=True)

    items, stats, docs = suricata_sample(data)
    (samples / "suricata-eve.json").write_bytes(b"".join(raw + b"\n" for _, _, raw in items))
    w = wazuh_sample(data)
    (samples / "wazuh-alerts.json").write_bytes(b"".join(t[2] + b"\n" for t in w))
    notes = fixtures(data, docs, fixdir)

    print(f"samples/suricata-eve.json: {len(items)} lines")
    for k, v in stats.items():
        print(f"  {k}: {v}")
    n_alert = sum(1 for s, l, _ in items if docs[s][l - 1]["event_type"] == "alert")
    print(f"  alerts {n_alert}, non-alert {len(items) - n_alert}")
    print(f"samples/wazuh-alerts.json: {len(w)} lines")
    for name, rows in notes.items():
        print(f"tests/fixtures/{name}:")
        for i, r in enumerate(rows, 1):
            print(f"  line {i}: {r}")


if __name__ == "__main__":
    main()
