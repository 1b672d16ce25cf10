'use strict';
// OpenTelemetry for auth-service. Loaded first (before `http` is required) so the http
// instrumentation can patch it. OTEL_SDK_DISABLED=true: no SDK at all. OTEL_TRACES_FILE and
// OTEL_METRICS_FILE set (native mode): OTLP JSON lines appended to those files. Otherwise
// OTLP/HTTP to the Collector (traces.jsonl and metrics.jsonl in Compose).
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

// OTLP JSON metrics, one document per export: appended to a file (native mode) or posted to the
// Collector's OTLP/HTTP JSON endpoint (Compose) with tracing suppressed (no spans of its own).
class JsonMetricExporter {
  constructor({ file, url }) {
    this.file = file;
    this.url = url;
    if (file) fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  }
  export(resourceMetrics, resultCallback) {
    let bytes;
    try {
      const { JsonMetricsSerializer } = require('@opentelemetry/otlp-transformer');
      bytes = JsonMetricsSerializer.serializeRequest(resourceMetrics);
    } catch (error) {
      resultCallback({ code: 1, error });
      return;
    }
    if (!bytes) { resultCallback({ code: 0 }); return; }
    if (this.file) {
      try {
        fs.appendFileSync(this.file, Buffer.concat([Buffer.from(bytes), Buffer.from('\n')]));
        resultCallback({ code: 0 });
      } catch (error) {
        resultCallback({ code: 1, error });
      }
      return;
    }
    const { context } = require('@opentelemetry/api');
    const { suppressTracing } = require('@opentelemetry/core');
    context.with(suppressTracing(context.active()), () => {
      const req = require('http').request(this.url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 5000,
      }, (res) => {
        res.resume();
        res.on('end', () => resultCallback({ code: res.statusCode < 300 ? 0 : 1 }));
      });
      req.on('error', (error) => resultCallback({ code: 1, error }));
      req.on('timeout', () => req.destroy(new Error('OTLP metrics export timed out')));
      req.end(Buffer.from(bytes));
    });
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
  process.env.OTEL_LOGS_EXPORTER = process.env.OTEL_LOGS_EXPORTER || 'none';
  const { NodeSDK } = require('@opentelemetry/sdk-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
  const { resourceFromAttributes } = require('@opentelemetry/resources');
  const { metrics } = require('@opentelemetry/sdk-node');
  const base = (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4318').replace(/\/$/, '');
  const metricExporter = new JsonMetricExporter(process.env.OTEL_METRICS_FILE
    ? { file: process.env.OTEL_METRICS_FILE } : { url: `${base}/v1/metrics` });
  const metricReader = new metrics.PeriodicExportingMetricReader({
    exporter: metricExporter,
    exportIntervalMillis: Number(process.env.OTEL_METRIC_EXPORT_INTERVAL) || 10000,
  });
  let exporter;
  if (process.env.OTEL_TRACES_FILE) {
    exporter = new FileSpanExporter(process.env.OTEL_TRACES_FILE);
  } else {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
    exporter = new OTLPTraceExporter({ url: `${base}/v1/traces` });
  }
  sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    instrumentations: [new HttpInstrumentation({
      ignoreIncomingRequestHook: (req) => req.url === '/metrics' || req.url === '/health',
    })],
    spanProcessors: [new BaggageMarkerProcessor(), new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000 })],
    metricReaders: [metricReader],
  });
  sdk.start();
}

async function shutdown() {
  if (sdk) {
    try { await sdk.shutdown(); } catch (_) { /* exiting anyway */ }
  }
}

module.exports = { start, shutdown, enabled, MARKER_KEYS };
