'use strict';
// Fault flags (appendix-code/faults.yaml) read from Redis every 500 ms, never per request.
// Key obslab:fault:<fault_id> = {"fault_id","level","incident_id","params","target"} with a TTL.
const { createClient } = require('redis');

const PREFIX = 'obslab:fault:';
// Faults auth-service implements; fault_active is pre-set to 0 for these.
const KNOWN = ['dependency_bottleneck', 'downstream_timeout', 'cascade_auth_slowdown', 'error_spike'];

class FaultFlags {
  constructor(redisUrl, service, gauge, intervalMs = 500) {
    this.service = service;
    this.gauge = gauge;
    this.active = {};
    this.client = createClient({ url: redisUrl, socket: { reconnectStrategy: (n) => Math.min(n * 200, 2000) } });
    this.client.on('error', () => {}); // Redis away: keep the last view; the TTL lives in Redis
    this.intervalMs = intervalMs;
    for (const id of KNOWN) gauge.set({ fault_id: id }, 0);
  }

  async start() {
    try { await this.client.connect(); } catch (_) { /* retried by the reconnect strategy */ }
    this.timer = setInterval(() => this.refresh().catch(() => {}), this.intervalMs);
    this.timer.unref();
    await this.refresh().catch(() => {});
  }

  async refresh() {
    if (!this.client.isReady) return;
    const keys = await this.client.keys(`${PREFIX}*`);
    const values = keys.length ? await this.client.mGet(keys) : [];
    const next = {};
    keys.forEach((key, i) => {
      if (!values[i]) return;
      try {
        const flag = JSON.parse(values[i]);
        flag.fault_id = flag.fault_id || key.slice(PREFIX.length);
        flag.params = flag.params || {};
        next[flag.fault_id] = flag;
      } catch (_) { /* malformed flag: ignored */ }
    });
    for (const id of new Set([...Object.keys(this.active), ...Object.keys(next)])) {
      this.gauge.set({ fault_id: id }, next[id] ? 1 : 0);
    }
    this.active = next;
  }

  // The flag when active and aimed at this service (no target means any).
  mine(faultId) {
    const flag = this.active[faultId];
    if (!flag || (flag.target && flag.target !== this.service)) return null;
    return flag;
  }

  // Milliseconds to stall this request, and whether to fail it, from the active faults.
  plan(rand = Math.random) {
    let delayMs = 0;
    let fail = false;
    for (const id of ['dependency_bottleneck', 'cascade_auth_slowdown']) {
      const f = this.mine(id);
      if (f && rand() < (f.params.fraction ?? 1)) {
        delayMs = Math.max(delayMs, (f.params.delay_ms ?? 300) + rand() * (f.params.jitter_ms ?? 0));
      }
    }
    const timeout = this.mine('downstream_timeout');
    if (timeout && rand() < (timeout.params.fraction ?? 0.5)) delayMs = Math.max(delayMs, timeout.params.hang_ms ?? 3000);
    const errors = this.mine('error_spike');
    if (errors && rand() < (errors.params.error_rate ?? 0.3)) fail = true;
    return { delayMs, fail };
  }

  async stop() {
    clearInterval(this.timer);
    try { await this.client.quit(); } catch (_) { /* already closed */ }
  }
}

module.exports = { FaultFlags, PREFIX, KNOWN };
