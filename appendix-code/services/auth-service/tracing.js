'use strict';
// OpenTelemetry for auth-service. Loaded first (before `http` is required) so the http
// instrumentation can patch it. OTEL_SDK_DISABLED=true: no SDK at all. OTEL_TRACES_FILE set
// (native mode): OTLP JSON lines appended to that file. Otherwise OTLP/HTTP to the Collector.
const fs = require('fs');
const path = require('path');
const { propagation } = require('@opentelemetry/api');

const MARKER_KEYS = ['anomaly.type', 'anomaly.label', 'anomaly.root_cause', 'anomaly.msg'];
const enabled = String(process.env.OTEL_SDK_DISABLED || 'false').toLowerCase() !== 'true';
let sdk = null;

// Appends one OTLP JSON document per export call, the Collector file exporter's line format.
class FileSpanExporter {
  constructor(file) {
    this.file = file;
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  }
  export(spans, resultCallback) {
    try {
      const { JsonTraceSerializer } = require('@opentelemetry/otlp-transformer');
      const bytes = JsonTraceSerializer.serializeRequest(spans);
      // Writes after sdk.shutdown() are still accepted (async resource detection, see RECIPES.md).
      if (bytes) fs.appendFileSync(this.file, Buffer.concat([Buffer.from(bytes), Buffer.from('\n')]));
      resultCallback({ code: 0 });
    } catch (error) {
      resultCallback({ code: 1, error });
    }
  }
  shutdown() { return Promise.resolve(); }
  forceFlush() { return Promise.resolve(); }
}

// Copies anomaly.* W3C baggage entries (set by web-api from the load generator's markers)
// onto every span started in that context.
class BaggageMarkerProcessor {
  onStart(span, parentContext) {
    const bag = propagation.getBaggage(parentContext);
    if (!bag) return;
    for (const [key, entry] of bag.getAllEntries()) {
      if (MARKER_KEYS.includes(key)) span.setAttribute(key, entry.value);
    }
  }
  onEnd() {}
  shutdown() { return Promise.resolve(); }
  forceFlush() { return Promise.resolve(); }
}

function start(serviceName) {
  if (!enabled || sdk) return;
  process.env.OTEL_METRICS_EXPORTER = process.env.OTEL_METRICS_EXPORTER || 'none';
  process.env.OTEL_LOGS_EXPORTER = process.env.OTEL_LOGS_EXPORTER || 'none';
  const { NodeSDK } = require('@opentelemetry/sdk-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  let exporter;
  if (process.env.OTEL_TRACES_FILE) {
    exporter = new FileSpanExporter(process.env.OTEL_TRACES_FILE);
  } else {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
    const base = (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4318').replace(/\/$/, '');
    exporter = new OTLPTraceExporter({ url: `${base}/v1/traces` });
  }
  sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    instrumentations: [new HttpInstrumentation({
      ignoreIncomingRequestHook: (req) => req.url === '/metrics' || req.url === '/health',
    })],
    spanProcessors: [new BaggageMarkerProcessor(), new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
  });
  sdk.start();
}

async function shutdown() {
  if (sdk) {
    try { await sdk.shutdown(); } catch (_) { /* exiting anyway */ }
  }
}

module.exports = { start, shutdown, enabled, MARKER_KEYS };
