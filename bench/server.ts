// Benchmark of the secrets server over loopback HTTP. Run: `npm run build && node dist/bench/server.js
// [--storage URL] [--secrets N] [--seconds S]`. The server runs as its own process (so its RSS is its own) on the
// chosen storage (default: SQLite in a temp dir); autocannon drives it from this process. Every figure is printed
// beside a baseline measured in the same run: GET /health, the cheapest route, on the same server.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import bs58 from 'bs58';
import { SecretsClient } from '../common/client.js';
import { generateKeypair, loginMessage } from '../common/login.js';
import { Progress } from '../common/progress.js';

const { values } = parseArgs({
  options: {
    storage: { type: 'string' },
    secrets: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    // V8 flags for the server process only, e.g. '--max-semi-space-size=4' (a smaller young generation, less RSS).
    'node-options': { type: 'string', default: '' },
  },
});
const secretCount = Number(values.secrets);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const dir = mkdtempSync(join(tmpdir(), 'nss-bench-'));
const storage = values.storage ?? `sqlite://${join(dir, 'db.sqlite')}`;

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return kb / 1024;
}

async function startServer(): Promise<{ url: string; pid: number; stop: () => void }> {
  const child = spawn(process.execPath, [resolve(import.meta.dirname, '../cli/main.js'), 'server'], {
    cwd: dir,
    env: {
      ...process.env, NODE_OPTIONS: values['node-options'], PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: storage, LOG_LEVEL: 'warn', SECRETS_STATE_DIR: join(dir, 'state'),
      // Every login of the load comes from this one source: the per-source limit would refuse nearly all of them.
      // The per-address limit stays on (each key logs in about 49 times), so its cost is part of the figure.
      LOGIN_RATE_LIMIT_PER_SOURCE: '0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((done, fail) => {
    child.once('exit', (code) => fail(new Error(`server exited with ${code}: ${stderr}`)));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      const match = /open (http:\/\/\S+)/.exec(stderr);
      if (match) done(match[1]!);
    });
  });
  return { url, pid: child.pid!, stop: () => child.kill('SIGTERM') };
}

interface Figures { rps: number; p50: number; p99: number; errors: number; perCore: number }

/** CPU seconds the server process has used (user + system), from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function load(name: string, options: autocannon.Options): Promise<Figures> {
  const progress = new Progress(`measuring ${name} for ${seconds} s`, { unit: 'requests' });
  const cpuBefore = cpuSeconds(server.pid);
  const result = await new Promise<autocannon.Result>((done, fail) => {
    const run = autocannon({ connections, duration: seconds, ...options }, (error, figures) => (error ? fail(error) : done(figures)));
    // autocannon's types declare the tick listener without its argument: the requests completed in the last second.
    run.on('tick', (tick?: { counter: number }) => progress.add(tick?.counter ?? 0));
  });
  progress.done(result.requests.total);
  const cpu = cpuSeconds(server.pid) - cpuBefore;
  const non2xx = result.non2xx + result.errors;
  return {
    rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: non2xx,
    // The load generator shares the two cores: the server's own CPU per request says what one core of it can do.
    perCore: result.requests.total / cpu,
  };
}

/**
 * Signed login bodies, each signature used once: a few hundred keys (node:crypto) each signing every second of the
 * accepted window (40 s back to 8 s ahead), so they stay valid for the whole login measurement.
 */
function loginBodies(count: number): string[] {
  const now = Math.floor(Date.now() / 1000);
  const timestamps = Array.from({ length: 49 }, (_, i) => now - 40 + i);
  const bodies: string[] = [];
  while (bodies.length < count) {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const address = bs58.encode(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
    for (const timestamp of timestamps) {
      const signature = bs58.encode(sign(null, Buffer.from(loginMessage(timestamp)), privateKey));
      bodies.push(JSON.stringify({ address, signature, timestamp }));
    }
  }
  return bodies;
}

const server = await startServer();
const client = new SecretsClient({ endpoint: server.url });
const owner = generateKeypair();
const { token } = await client.login(owner);
console.log(`storage: ${storage.replace(/:[^:@/]*@/, ':***@')}; server NODE_OPTIONS: ${values['node-options'] || '(none)'}`);
console.log(`RSS at start: ${rssMb(server.pid).toFixed(0)} MB`);

// Writes: 100,000 secrets in batches of 1,000 through POST /secrets.
const storing = new Progress('storing secrets', { unit: 'secrets', total: secretCount });
const writeStart = performance.now();
for (let i = 0; i < secretCount; i += 1000) {
  const batch: Record<string, string> = {};
  for (let j = i; j < Math.min(i + 1000, secretCount); j++) batch[`KEY_${j}`] = `value-${j}-${'x'.repeat(32)}`;
  const response = await fetch(`${server.url}/secrets`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ secrets: batch }),
  });
  if (!response.ok) throw new Error(`storing failed: ${response.status} ${await response.text()}`);
  storing.update(Math.min(i + 1000, secretCount));
}
storing.done();
const writesPerSecond = secretCount / ((performance.now() - writeStart) / 1000);
const rssLoaded = rssMb(server.pid);

const baseline = await load('baseline', { url: `${server.url}/health` });
// Static requests, which autocannon builds once: a function per request would measure the load generator, which
// shares these two cores with the server.
const reads = await load('reads', {
  url: server.url,
  headers: { authorization: `Bearer ${token}` },
  requests: Array.from({ length: 1000 }, (_, i) => ({ method: 'GET' as const, path: `/secrets/KEY_${(i * 7919) % secretCount}` })),
});
process.stderr.write('signing login messages...\n');
// Each signature is accepted once, and every autocannon connection cycles through a static list on its own: so
// the bodies are handed out one by one, by a function kept as cheap as it can be.
const bodies = loginBodies(Math.ceil(seconds * 6000));
let used = 0;
const logins = await load('logins', {
  url: server.url,
  headers: { 'content-type': 'application/json' },
  requests: [{
    method: 'POST',
    path: '/login',
    setupRequest: (request) => {
      request.body = bodies[used++ % bodies.length];
      return request;
    },
  }],
});
const rssAfter = rssMb(server.pid);
const metricsText = await (await fetch(`${server.url}/metrics`)).text();
const gauge = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metricsText)?.[1] ?? NaN) / 1024 / 1024;
server.stop();

const row = (name: string, f: Figures) =>
  `${name.padEnd(28)} ${f.rps.toFixed(0).padStart(8)}/s  ${(f.rps / baseline.rps).toFixed(2).padStart(5)}x  p50 ${f.p50.toFixed(1).padStart(5)} ms  p99 ${f.p99.toFixed(1).padStart(5)} ms  ` +
  `non-2xx ${f.errors}  server CPU: ${f.perCore.toFixed(0)} requests per core-second`;
console.log(`\n${connections} connections, ${seconds} s each, loopback, ${secretCount} secrets stored`);
console.log(row('baseline GET /health', baseline));
console.log(row('reads GET /secrets/:key', reads));
console.log(row('logins POST /login', logins));
console.log(`writes (batches of 1,000)     ${writesPerSecond.toFixed(0).padStart(8)}/s`);
console.log(`RSS after storing ${secretCount}: ${rssLoaded.toFixed(0)} MB; after the load: ${rssAfter.toFixed(0)} MB ` +
  `(V8 heap ${gauge('nosana_secrets_nodejs_heap_size_total_bytes').toFixed(0)} MB, external ${gauge('nosana_secrets_nodejs_external_memory_bytes').toFixed(0)} MB)`);
if (used > bodies.length) console.log(`note: ${used - bodies.length} login requests reused a signature (refused as replays)`);
