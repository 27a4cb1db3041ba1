// Starts the simulator and the gateway as child processes, and drives the simulator's control API.
// Every process listens on 127.0.0.1 with an OS-chosen port parsed from its "listening on" line.

import { spawn } from 'node:child_process';
import { after, before, beforeEach } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = process.env.FREEWAY_ROOT || path.resolve(here, '../../..');
export const FREEWAY_BIN = process.env.FREEWAY_BIN || path.join(ROOT, 'target/debug/freeway');
export const SIM_BIN = process.env.FREEWAY_SIM_BIN || path.join(ROOT, 'target/debug/freeway-sim');

export const READY_TIMEOUT_MS = 30_000;
export const MODEL = 'local-model';
export const UPSTREAM_KEY = 'sk-local-1';
export const GATEWAY_KEY = 'fw-e2e-key';
export const FULL_REPLY = Array.from({ length: 12 }, (_, i) => `tok${i}`).join(' ');
export const CHAT = '/chat/completions';

const ANSI = /\x1b\[[0-9;]*m/g;

export function user(content = 'Say hello') {
  return [{ role: 'user', content }];
}

export function parseRoute(header) {
  const out = {};
  for (const part of (header || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** A child process; resolves once its stdout shows `ready` (a regex whose group 1 is the port). */
class Child {
  constructor(name, args, ready) {
    this.name = name;
    this.output = '';
    if (!fs.existsSync(args[0])) {
      throw new Error(`${name}: binary ${args[0]} is missing; build it with \`cargo xtask build\` (or set FREEWAY_BIN / FREEWAY_SIM_BIN)`);
    }
    this.proc = spawn(args[0], args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    this.port = new Promise((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => {
        this.stop();
        reject(new Error(`${name} did not print its listening line within ${READY_TIMEOUT_MS / 1000}s\n${this.describe()}`));
      }, READY_TIMEOUT_MS);
      this.proc.stdout.on('data', (data) => {
        const text = data.toString().replace(ANSI, '');
        this.output += text;
        stdout += text;
        const match = ready.exec(stdout);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      this.proc.stderr.on('data', (data) => {
        this.output += data.toString().replace(ANSI, '');
      });
      this.proc.once('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`${name} failed to start: ${err.message}`));
      });
      this.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (code ${code}, signal ${signal}) before it was ready\n${this.describe()}`));
      });
    });
    // Avoid an unhandled rejection if the caller stops before awaiting `port`.
    this.port.catch(() => {});
  }

  describe() {
    return `--- ${this.name} output ---\n${this.output}`;
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 5_000).unref());
    if ((await Promise.race([this.exited, timeout])) === 'timeout') {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

export class Sim {
  static async start() {
    const sim = new Sim();
    sim.child = new Child('freeway-sim', [SIM_BIN, '--listen', '127.0.0.1:0'], /freeway-sim listening on http:\/\/127\.0\.0\.1:(\d+)/);
    const port = await sim.child.port;
    sim.url = `http://127.0.0.1:${port}`;
    sim.baseURL = `${sim.url}/v1`;
    return sim;
  }

  async control(method, route, body) {
    const response = await fetch(this.url + route, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`sim ${method} ${route} failed: ${response.status} ${text}`);
    return JSON.parse(text);
  }

  /** Appends rules (see tests/sim/README.md). */
  script(...rules) {
    return this.control('POST', '/_sim/script', { rules });
  }

  reset() {
    return this.control('POST', '/_sim/reset');
  }

  requests() {
    return this.control('GET', '/_sim/requests');
  }

  async chatRequests() {
    return (await this.requests()).filter((r) => r.path.endsWith(CHAT));
  }

  stop() {
    return this.child?.stop();
  }
}

function tomlString(value) {
  return JSON.stringify(String(value));
}

export class Gateway {
  /** A `freeway serve` whose only provider is `sim`; `apiKeys` turns on client authentication. */
  static async start(sim, { apiKeys, name = 'freeway' } = {}) {
    const gw = new Gateway();
    gw.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'freeway-e2e-node-'));
    const policies = path.join(gw.dir, 'policies');
    fs.mkdirSync(policies);
    // the default routing policy, so `model: 'auto'` works as it does for users
    fs.copyFileSync(path.join(ROOT, 'policies', 'smart.wasm'), path.join(policies, 'smart.wasm'));
    const config = path.join(gw.dir, 'freeway.toml');
    fs.writeFileSync(
      config,
      [
        '[server]',
        'shutdown_grace_secs = 2',
        ...(apiKeys ? [`api_keys = [${apiKeys.map(tomlString).join(', ')}]`] : []),
        '[runtime]',
        `providers_dir = ${tomlString(path.join(ROOT, 'providers'))}`,
        `policies_dir = ${tomlString(policies)}`,
        `cache_dir = ${tomlString(path.join(ROOT, 'target/e2e-component-cache'))}`,
        'max_instances = 64',
        '[upstream]',
        'max_attempts = 3',
        'egress_hosts = ["127.0.0.1", "::1", "localhost"]',
        '[storage]',
        `url = ${tomlString('sqlite://' + path.join(gw.dir, 'freeway.db'))}`,
        '[quota]',
        `state_file = ${tomlString(path.join(gw.dir, 'quota.json'))}`,
        '[vault]',
        `path = ${tomlString(path.join(gw.dir, 'vault.json'))}`,
        `key_file = ${tomlString(path.join(gw.dir, 'master.key'))}`,
        `audit_log = ${tomlString(path.join(gw.dir, 'audit.log'))}`,
        `health_file = ${tomlString(path.join(gw.dir, 'health.json'))}`,
        '[routing]',
        `stats_file = ${tomlString(path.join(gw.dir, 'route-stats.json'))}`,
        '[discovery]',
        'interval_secs = 0',
        `state_file = ${tomlString(path.join(gw.dir, 'models.json'))}`,
        '[[providers]]',
        'id = "local"',
        'component = "openai-compat"',
        `base_url = ${tomlString(sim.baseURL)}`,
        `api_keys = [${tomlString(UPSTREAM_KEY)}]`,
        `models = [${tomlString(MODEL)}]`,
        '',
      ].join('\n'),
    );
    gw.child = new Child(name, [FREEWAY_BIN, 'serve', '--config', config, '--listen', '127.0.0.1:0'], /freeway listening on http:\/\/127\.0\.0\.1:(\d+)/);
    try {
      const port = await gw.child.port;
      gw.url = `http://127.0.0.1:${port}`;
      gw.baseURL = `${gw.url}/v1`;
      await gw.waitReady();
    } catch (err) {
      await gw.stop();
      throw err;
    }
    return gw;
  }

  async waitReady() {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let last = 'no answer';
    while (Date.now() < deadline) {
      try {
        const response = await fetch(`${this.url}/ready`, { signal: AbortSignal.timeout(2_000) });
        const text = await response.text();
        if (response.status === 200) return;
        last = `${response.status} ${text}`;
      } catch (err) {
        last = String(err);
      }
      if (this.child.proc.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${this.child.name}: GET /ready never returned 200 (last: ${last})\n${this.child.describe()}`);
  }

  client(apiKey = 'anything') {
    // maxRetries: 0 — the SDK would otherwise retry 429/5xx itself.
    return new OpenAI({ baseURL: this.baseURL, apiKey, maxRetries: 0, timeout: 15_000 });
  }

  async stop() {
    await this.child?.stop();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Registers before/after hooks that start one simulator and one gateway for the calling test file,
 * and reset the simulator before each test. Returns an object filled in once `before` has run.
 */
export function useStack({ auth = false } = {}) {
  const stack = {};
  before(async () => {
    stack.sim = await Sim.start();
    stack.gateway = await Gateway.start(stack.sim);
    if (auth) stack.authGateway = await Gateway.start(stack.sim, { apiKeys: [GATEWAY_KEY], name: 'freeway-auth' });
    stack.client = stack.gateway.client();
  });
  after(async () => {
    await stack.authGateway?.stop();
    await stack.gateway?.stop();
    await stack.sim?.stop();
  });
  beforeEach(async () => {
    await stack.sim.reset();
  });
  return stack;
}

/** A gateway of its own for one test whose faults could leave state (cool-downs, breakers) behind. */
export async function withFreshGateway(sim, fn) {
  const gw = await Gateway.start(sim, { name: 'freeway-fresh' });
  try {
    return await fn(gw.client(), gw);
  } finally {
    await gw.stop();
  }
}

export function contentOf(chunks) {
  return chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join('');
}
