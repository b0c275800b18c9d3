#!/usr/bin/env python3
"""Local stand-in for the online providers, for measuring vigil's enrichment offline.

Listens on 127.0.0.1 only and answers in each provider's documented response shape:
AbuseIPDB v2 /api/v2/check, VirusTotal v3 /api/v3/{ip_addresses,domains,urls,files}/ID,
AlienVault OTX /api/v1/indicators/TYPE/VALUE/general, URLhaus POST /v1/host/ and /v1/url/,
RDAP /domain/NAME. Verdicts are derived from a hash of the indicator so runs repeat; about one
indicator in five is "not found". Every request is counted; GET /_count returns the counts.

Usage: python3 docs/measure/mock-providers.py [PORT]   (see docs/measure/README.md)
"""
import hashlib
import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}


def h(s):
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def count(self, provider):
        COUNTS[provider] = COUNTS.get(provider, 0) + 1

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/") if p]
        if parts == ["_count"]:
            return self.send(200, COUNTS)
        if parts[:3] == ["api", "v2", "check"]:
            self.count("abuseipdb")
            ip = urllib.parse.parse_qs(u.query).get("ipAddress", [""])[0]
            score = h(ip) % 101
            return self.send(200, {"data": {"ipAddress": ip, "isPublic": True, "ipVersion": 4,
                                            "isWhitelisted": False, "abuseConfidenceScore": score,
                                            "countryCode": "ZZ", "usageType": "Data Center/Web Hosting/Transit",
                                            "isp": "Mock", "domain": "mock.invalid", "hostnames": [],
                                            "isTor": False, "totalReports": score // 3,
                                            "numDistinctUsers": score // 5, "lastReportedAt": None}})
        if parts[:2] == ["api", "v3"] and len(parts) == 4:
            self.count("virustotal")
            if h(parts[3]) % 5 == 0:
                return self.send(404, {"error": {"code": "NotFoundError", "message": "not found"}})
            m = h(parts[3]) % 8
            return self.send(200, {"data": {"type": parts[2], "id": parts[3], "attributes": {
                "reputation": -m, "last_analysis_stats": {"harmless": 60, "malicious": m,
                                                          "suspicious": m // 3, "undetected": 20, "timeout": 0}}}})
        if parts[:3] == ["api", "v1", "indicators"] and len(parts) == 6:
            self.count("otx")
            n = h(parts[4]) % 7
            return self.send(200, {"indicator": parts[4], "type": parts[3], "reputation": 0,
                                   "pulse_info": {"count": n, "pulses": [{"id": str(i), "name": "pulse %d" % i} for i in range(n)]}})
        if parts[:1] == ["domain"] and len(parts) == 2:
            self.count("rdap")
            if h(parts[1]) % 5 == 0:
                return self.send(404, {"errorCode": 404, "title": "Not Found"})
            return self.send(200, {"objectClassName": "domain", "ldhName": parts[1].upper(),
                                   "events": [{"eventAction": "registration", "eventDate": "2015-06-01T00:00:00Z"}],
                                   "entities": [{"objectClassName": "entity", "roles": ["registrar"],
                                                 "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "Mock Registrar"]]]}]})
        self.send(404, {"error": "unknown path"})

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        parts = [p for p in self.path.split("/") if p]
        if parts[:1] == ["v1"] and parts[1:2] in (["host"], ["url"]):
            self.count("urlhaus")
            value = (form.get("host") or form.get("url") or [""])[0]
            if h(value) % 4:
                return self.send(200, {"query_status": "no_results"})
            return self.send(200, {"query_status": "ok", "url_count": "1", "url_status": "offline",
                                   "threat": "malware_download", "urls": [{"url_status": "offline"}],
                                   "urlhaus_reference": "https://urlhaus.invalid/"})
        self.send(404, {"error": "unknown path"})


port = int(sys.argv[1]) if len(sys.argv) > 1 else 18080
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
