'use strict';
// One JSON object per line on stdout (fields documented in appendix-code/TELEMETRY.md).
const { trace } = require('@opentelemetry/api');

const SERVICE = process.env.SERVICE_NAME || 'auth-service';
const ORDER = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 };
const threshold = ORDER[String(process.env.LOG_LEVEL || 'INFO').toUpperCase().replace('WARNING', 'WARN')] || 20;

function log(level, event, message, fields = {}) {
  if (ORDER[level] < threshold) return;
  const line = { timestamp: new Date().toISOString(), level, service: SERVICE, message, event };
  const ctx = trace.getActiveSpan()?.spanContext();
  if (ctx && ctx.traceId && ctx.traceId !== '00000000000000000000000000000000') {
    line.trace_id = ctx.traceId;
    line.span_id = ctx.spanId;
  }
  process.stdout.write(JSON.stringify({ ...line, ...fields }) + '\n');
}

module.exports = {
  SERVICE,
  debug: (event, msg, f) => log('DEBUG', event, msg, f),
  info: (event, msg, f) => log('INFO', event, msg, f),
  warn: (event, msg, f) => log('WARN', event, msg, f),
  error: (event, msg, f) => log('ERROR', event, msg, f),
};
