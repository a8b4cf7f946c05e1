// Benchmark of the secrets server over loopback HTTP. Run: `npm run build && node dist/bench/server.js [--storage URL]
// [--secrets N] [--seconds S] [--rounds R] [--base DIR]`. The server runs as its own processes (its RSS and CPU are
// its own, summed over its workers) on the chosen storage (default: SQLite in a temp dir); autocannon drives it from
// this process. Every figure is printed beside baselines measured in the same run: GET /health, the cheapest route,
// on the same server; and with --base DIR, the same workloads against another build (a checkout with its own built
// dist/, e.g. `git worktree add /tmp/base <commit>` + `npm run build`), the two builds alternating round by round.
import { spawn } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import bs58 from 'bs58';
import { SecretsClient } from '../common/client.js';
import { generateKeypair, loginMessage } from '../common/login.js';
import { Progress } from '../common/progress.js';
import { processTree, rssMb, treeCpuSeconds } from './proc.js';

const { values } = parseArgs({
  options: {
    storage: { type: 'string' },
    secrets: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    // The build to compare with: a directory holding dist/cli/main.js.
    base: { type: 'string' },
    // The server's log level: `info` (the chart's default) writes the audit line of every read, as production does.
    'log-level': { type: 'string', default: 'info' },
    // Node flags for the server processes only (workers inherit them), e.g. '--max-semi-space-size=4' (a smaller young
    // generation, less RSS) or '--cpu-prof --cpu-prof-dir=/tmp/prof' (a profile per process).
    'node-options': { type: 'string', default: '' },
    // Only the workloads whose name contains this, e.g. 'job read' (the health baseline always runs).
    only: { type: 'string' },
  },
});
const secretCount = Number(values.secrets);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const JOB_KEYS = 20;

interface Server { name: string; url: string; pid: number; stop: () => void; ownerToken: string; jobToken: string }

async function startServer(name: string, root: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'nss-bench-'));
  const storage = values.storage ?? `sqlite://${join(dir, 'db.sqlite')}`;
  const child = spawn(process.execPath, [...values['node-options'].split(' ').filter(Boolean), join(root, 'cli/main.js'), 'server'], {
    cwd: dir,
    env: {
      ...process.env, PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: storage,
      LOG_LEVEL: values['log-level'], SECRETS_STATE_DIR: join(dir, 'state'),
      // Every login of the load comes from this one source: the per-source limit would refuse nearly all of them.
      // The per-address limit stays on (each key logs in about 49 times), so its cost is part of the figure.
      LOGIN_RATE_LIMIT_PER_SOURCE: '0',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((done, fail) => {
    child.once('exit', (code) => fail(new Error(`server ${name} exited with ${code}: ${stderr}`)));
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d;
      const match = /open (http:\/\/\S+)/.exec(stderr);
      if (match) done(match[1]!);
    });
  });
  const client = new SecretsClient({ endpoint: url });
  const owner = generateKeypair();
  const { token } = await client.login(owner);
  // 100,000 secrets in batches of 1,000 through POST /secrets.
  const storing = new Progress(`${name}: storing secrets`, { unit: 'secrets', total: secretCount });
  for (let i = 0; i < secretCount; i += 1000) {
    const batch: Record<string, string> = {};
    for (let j = i; j < Math.min(i + 1000, secretCount); j++) batch[`KEY_${j}`] = `value-${j}-${'x'.repeat(32)}`;
    const response = await fetch(`${url}/secrets`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ secrets: batch }),
    });
    if (!response.ok) throw new Error(`storing failed: ${response.status} ${await response.text()}`);
    storing.update(Math.min(i + 1000, secretCount));
  }
  storing.done();
  // A job granted 20 keys spread over the table, read as a whole set by GET /secrets, as a Mount or a sync does.
  const jobKeys = Array.from({ length: JOB_KEYS }, (_, i) => `KEY_${(i * 4999) % secretCount}`);
  await client.putGrant(token, 'bench-job', jobKeys, [owner.address]);
  const { token: jobToken } = await client.jobToken(token, 'bench-job', owner.address);
  return { name, url, pid: child.pid!, stop: () => child.kill('SIGTERM'), ownerToken: token, jobToken };
}

interface Figures { rps: number; p99: number; errors: number; perCpuSecond: number }

async function load(server: Server, label: string, options: autocannon.Options): Promise<Figures> {
  const progress = new Progress(`${label} for ${seconds} s`, { unit: 'requests' });
  const cpuBefore = treeCpuSeconds(server.pid);
  const result = await new Promise<autocannon.Result>((done, fail) => {
    const run = autocannon({ connections, duration: seconds, ...options }, (error, figures) => (error ? fail(error) : done(figures)));
    // autocannon's types declare the tick listener without its argument: the requests completed in the last second.
    run.on('tick', (tick?: { counter: number }) => progress.add(tick?.counter ?? 0));
  });
  progress.done(result.requests.total);
  const cpu = treeCpuSeconds(server.pid) - cpuBefore;
  return {
    rps: result.requests.average, p99: result.latency.p99, errors: result.non2xx + result.errors,
    // The load generator shares the cores: the server's own CPU per request says what a core of it can do.
    perCpuSecond: result.requests.total / cpu,
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

// Static requests where possible, which autocannon builds once: a function per request would measure the load
// generator, which shares the cores with the server.
const WORKLOADS: { name: string; options: (server: Server) => autocannon.Options }[] = [
  { name: 'baseline GET /health', options: (s) => ({ url: `${s.url}/health` }) },
  {
    name: 'read one GET /secrets/:key', options: (s) => ({
      url: s.url, headers: { authorization: `Bearer ${s.ownerToken}` },
      requests: Array.from({ length: 1000 }, (_, i) => ({ method: 'GET' as const, path: `/secrets/KEY_${(i * 7919) % secretCount}` })),
    }),
  },
  { name: `job read ${JOB_KEYS} keys GET /secrets`, options: (s) => ({ url: `${s.url}/secrets`, headers: { authorization: `Bearer ${s.jobToken}` } }) },
  {
    name: 'login POST /login', options: (s) => {
      // Each signature is accepted once, and every autocannon connection cycles through a static list on its own:
      // so the bodies are handed out one by one, by a function kept as cheap as it can be.
      const bodies = loginBodies(Math.ceil(seconds * 12_000));
      let used = 0;
      return {
        url: s.url, headers: { 'content-type': 'application/json' },
        requests: [{ method: 'POST', path: '/login', setupRequest: (request) => { request.body = bodies[used++ % bodies.length]; return request; } }],
      };
    },
  },
];

const MEASURED = WORKLOADS.filter((w, i) => i === 0 || values.only === undefined || w.name.includes(values.only));

const servers = [await startServer('new', resolve(import.meta.dirname, '..'))];
if (values.base !== undefined) servers.unshift(await startServer('base', resolve(values.base, 'dist')));
const rssLoaded = new Map(servers.map((s) => [s.name, processTree(s.pid).map(rssMb)]));

const results = new Map<string, Figures[]>();
for (let round = 0; round < rounds; round++) {
  // Alternated, so neither build always runs first (the machine is shared and its load drifts).
  const order = round % 2 === 0 ? servers : [...servers].reverse();
  for (const workload of MEASURED) {
    for (const server of order) {
      const key = `${server.name}\0${workload.name}`;
      const label = `round ${round + 1}/${rounds}: ${server.name} ${workload.name}`;
      results.set(key, [...(results.get(key) ?? []), await load(server, label, workload.options(server))]);
    }
  }
}
const rssAfter = new Map(servers.map((s) => [s.name, processTree(s.pid).map(rssMb)]));
for (const server of servers) server.stop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = (xs: number[]) => xs.map((x) => x.toFixed(0)).join('+');
console.log(`\n${connections} connections, ${seconds} s per step, ${rounds} rounds (medians), loopback, ${secretCount} secrets stored, ` +
  `storage ${values.storage?.replace(/:[^:@/]*@/, ':***@') ?? 'sqlite (temp file)'}, LOG_LEVEL=${values['log-level']}, ` +
  `SERVER_WORKERS=${process.env.SERVER_WORKERS ?? '(default)'}, server node options: ${values['node-options'] || '(none)'}`);
for (const workload of MEASURED) {
  for (const server of servers) {
    const figures = results.get(`${server.name}\0${workload.name}`)!;
    const rps = median(figures.map((f) => f.rps));
    const health = median(results.get(`${server.name}\0${WORKLOADS[0]!.name}`)!.map((f) => f.rps));
    const base = values.base === undefined || server.name === 'base' ? undefined
      : median(results.get(`base\0${workload.name}`)!.map((f) => f.rps));
    console.log(`${`${workload.name} [${server.name}]`.padEnd(40)} ${rps.toFixed(0).padStart(7)}/s  ${(rps / health).toFixed(2)}x health` +
      `${base === undefined ? '' : `  ${(rps / base).toFixed(2)}x base`}  p99 ${median(figures.map((f) => f.p99)).toFixed(1)} ms  ` +
      `${median(figures.map((f) => f.perCpuSecond)).toFixed(0)} per server CPU-s  non-2xx ${figures.reduce((n, f) => n + f.errors, 0)}`);
  }
}
for (const server of servers) {
  console.log(`RSS [${server.name}] per process (MB): after storing ${mb(rssLoaded.get(server.name)!)}; after the load ${mb(rssAfter.get(server.name)!)}`);
}
