'use strict';
// auth-service: POST /login, GET /validate, GET /health, GET /metrics (plain node http).
// Tokens are HMAC-SHA256 signed with AUTH_TOKEN_SECRET; the lab's users are user0001..user0500
// with password "pw-<username>" (fake credentials, same rule as web-api's seed data).
const SERVICE = process.env.SERVICE_NAME || 'auth-service';
const tracing = require('./tracing');
tracing.start(process.env.OTEL_SERVICE_NAME || SERVICE);

const http = require('http');
const crypto = require('crypto');
const client = require('prom-client');
const log = require('./logger');
const { FaultFlags } = require('./faults');

const PORT = Number(process.env.PORT || 8081);
const HOST = process.env.BIND_HOST || '127.0.0.1';
const SECRET = process.env.AUTH_TOKEN_SECRET || 'dev-only-not-a-secret';
const TOKEN_TTL_S = Number(process.env.TOKEN_TTL_S || 3600);
const N_USERS = 500;
const BENIGN_5XX_RATE = Number(process.env.BENIGN_5XX_RATE || 0.001);

// --- metrics ------------------------------------------------------------------------------
client.collectDefaultMetrics(); // process_cpu_seconds_total, process_resident_memory_bytes, ...
const requests = new client.Counter({ name: 'http_requests_total', help: 'HTTP requests served',
  labelNames: ['service', 'route', 'method', 'status'] });
const latency = new client.Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request duration',
  labelNames: ['service', 'route', 'method'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
const errors = new client.Counter({ name: 'app_errors_total', help: 'Application errors by type',
  labelNames: ['service', 'type'] });
const logins = new client.Counter({ name: 'auth_logins_total', help: 'Login attempts by result',
  labelNames: ['service', 'result'] });
const requestBytes = new client.Counter({ name: 'http_request_bytes_total', help: 'Request body bytes received',
  labelNames: ['service', 'route'] });
const responseBytes = new client.Counter({ name: 'http_response_bytes_total', help: 'Response body bytes sent',
  labelNames: ['service', 'route'] });
const faultActive = new client.Gauge({ name: 'fault_active', help: '1 while a fault flag is active (verification only)',
  labelNames: ['fault_id'] });

const faults = new FaultFlags(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0', SERVICE, faultActive);

// --- tokens -------------------------------------------------------------------------------
function sign(payload) {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
  const mac = crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
  return `${body}.${mac}`;
}

function verify(token) {
  const [body, mac] = String(token || '').split('.');
  if (!body || !mac) return null;
  const expected = crypto.createHmac('sha256', SECRET).update(body).digest('base64url');
  if (mac.length !== expected.length || !crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(expected))) return null;
  try {
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString());
    return payload.exp > Date.now() / 1000 ? payload : null;
  } catch (_) {
    return null;
  }
}

function userId(username) {
  const m = /^user(\d{4})$/.exec(String(username || ''));
  const n = m ? Number(m[1]) : 0;
  return n >= 1 && n <= N_USERS ? n : null;
}

// --- http ---------------------------------------------------------------------------------
function readJson(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 65536) req.destroy(); });
    req.on('end', () => { try { resolve(JSON.parse(data)); } catch (_) { resolve(undefined); } });
    req.on('error', () => resolve(undefined));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function login(req) {
  const body = await readJson(req);
  if (!body || typeof body !== 'object') return [400, { error: 'JSON body with username and password required' }];
  const uid = userId(body.username);
  if (uid === null || body.password !== `pw-${body.username}`) {
    logins.inc({ service: SERVICE, result: 'denied' });
    return [401, { error: 'invalid credentials' }];
  }
  logins.inc({ service: SERVICE, result: 'ok' });
  const token = sign({ sub: body.username, uid, exp: Math.floor(Date.now() / 1000) + TOKEN_TTL_S });
  return [200, { token, user_id: uid, expires_in: TOKEN_TTL_S }];
}

function validate(req) {
  const auth = req.headers.authorization || '';
  const payload = auth.startsWith('Bearer ') ? verify(auth.slice(7)) : null;
  if (!payload) return [401, { error: 'invalid or expired token' }];
  return [200, { user_id: payload.uid, username: payload.sub }];
}

const ROUTES = {
  'POST /login': login,
  'GET /validate': validate,
  'GET /health': () => [200, { status: 'ok', service: SERVICE }],
};

async function handle(req, res) {
  const started = process.hrtime.bigint();
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/metrics') {
    res.writeHead(200, { 'Content-Type': client.register.contentType });
    res.end(await client.register.metrics());
    return;
  }
  const key = `${req.method} ${url.pathname}`;
  const handler = ROUTES[key];
  const route = handler ? url.pathname : 'unmatched';
  let status;
  let body;
  try {
    if (!handler) {
      [status, body] = [404, { error: 'not found' }];
    } else if (route === '/health') {
      [status, body] = handler(req);
    } else {
      const { delayMs, fail } = faults.plan();
      if (delayMs > 0) await sleep(delayMs);
      if (fail || Math.random() < BENIGN_5XX_RATE) {
        [status, body] = [500, { error: 'internal error' }];
        errors.inc({ service: SERVICE, type: 'internal' });
        log.error('error', 'request failed: internal error', { route });
      } else {
        [status, body] = await handler(req);
      }
    }
  } catch (err) {
    [status, body] = [500, { error: 'internal error' }];
    errors.inc({ service: SERVICE, type: 'exception' });
    log.error('error', `unhandled exception: ${err.message}`, { route });
  }
  if (res.destroyed) return; // the caller gave up (timeout)
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(payload);
  if (route === '/health') return;
  requestBytes.inc({ service: SERVICE, route }, Number(req.headers['content-length'] || 0));
  responseBytes.inc({ service: SERVICE, route }, Buffer.byteLength(payload));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  requests.inc({ service: SERVICE, route, method: req.method, status: String(status) });
  latency.observe({ service: SERVICE, route, method: req.method }, seconds);
  const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
  log[level]('access', `${req.method} ${url.pathname} ${status}`, {
    method: req.method, path: url.pathname, route, status, duration_ms: Math.round(seconds * 100000) / 100,
  });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    log.error('error', `request handling failed: ${err.message}`);
    if (!res.headersSent) { res.writeHead(500); res.end(); }
  });
});

faults.start().then(() => {
  server.listen(PORT, HOST, () => log.info('lifecycle', 'service started', { port: PORT }));
});
server.on('error', (err) => {
  log.error('error', `cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  log.info('lifecycle', 'service stopping', { signal });
  server.close();
  await faults.stop();
  await tracing.shutdown();
  process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
