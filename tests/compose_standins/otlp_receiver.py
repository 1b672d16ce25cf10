"""TEST-ONLY stand-in for the OpenTelemetry Collector in the Compose test.

The Collector has no Debian package and no registry is reachable, so the Compose test replaces
it with this receiver: OTLP/HTTP (protobuf or JSON) on :4318, written as the Collector's file
exporter writes them (one {"resourceSpans"|"resourceMetrics"|"resourceLogs": [...]} document
per line, ids in hex, int64 as strings, enums as integers), and the health_check extension's
answer on :13133. The real stack runs the Collector with config/otel-collector-config.yml.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict, ParseDict
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

OUT = os.environ.get("TELEMETRY_DIR", "/telemetry")
SIGNALS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest,
                   trace_service_pb2.ExportTraceServiceResponse, "traces.jsonl"),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest,
                    metrics_service_pb2.ExportMetricsServiceResponse, "metrics.jsonl"),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest,
                 logs_service_pb2.ExportLogsServiceResponse, "logs.jsonl"),
}
ID_KEYS = {"traceId", "spanId", "parentSpanId"}
_lock = threading.Lock()


def _hex_ids(node):
    """Protobuf JSON writes bytes as base64; OTLP JSON (and the file exporter) writes ids in hex."""
    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in ID_KEYS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def _b64_ids(node):
    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ID_KEYS and isinstance(v, str)
                    else _b64_ids(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_b64_ids(v) for v in node]
    return node


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # one line per request is noise in `compose logs`
        pass

    def _reply(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.server.server_address[1] == 13133 and self.path in ("/", "/health"):
            self._reply(200, b'{"status":"Server available"}', "application/json")
        else:
            self._reply(404, b"not found", "text/plain")

    def _body(self) -> bytes:
        """The request body: Content-Length or chunked (Node's exporter), gzip or not."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def do_POST(self):
        spec = SIGNALS.get(self.path)
        if spec is None or self.server.server_address[1] != 4318:
            self._reply(404, b"not found", "text/plain")
            return
        req_cls, resp_cls, fname = spec
        body = self._body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            msg = req_cls()
            if ctype == "application/json":
                ParseDict(_b64_ids(json.loads(body)), msg, ignore_unknown_fields=True)
            else:
                msg.ParseFromString(body)
        except Exception as exc:  # a bad request is answered, never crashes the receiver
            self._reply(400, f"bad OTLP request: {type(exc).__name__}".encode(), "text/plain")
            return
        doc = _hex_ids(MessageToDict(msg, use_integers_for_enums=True))
        if doc:
            line = json.dumps(doc, separators=(",", ":")) + "\n"
            with _lock, open(os.path.join(OUT, fname), "a", encoding="utf-8") as fh:
                fh.write(line)
        if ctype == "application/json":
            self._reply(200, b"{}", "application/json")
        else:
            self._reply(200, resp_cls().SerializeToString(), "application/x-protobuf")


def main() -> None:
    servers = [ThreadingHTTPServer(("0.0.0.0", port), Handler) for port in (4318, 13133)]
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"otlp-receiver (test stand-in for the Collector): writing to {OUT}", file=sys.stderr, flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
