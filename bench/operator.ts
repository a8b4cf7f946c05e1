// Benchmark of the operator against a real kube-apiserver. Run: `bash test/env up kube && npm run build &&
// KUBECONFIG=... node dist/bench/operator.js [--bindings 1000] [--workers 4] [--concurrency 16]`.
// The secrets server and the operator run as their own processes (so the operator's RSS is its own). Printed: the
// baseline (time to create as many plain ConfigMaps, same client, same concurrency), the time to create the bindings,
// the time until every binding is Ready (target: under 60 s for 1,000), reconciles per second and the operator's peak
// RSS (target: under 150 MB).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { SecretsClient } from '../common/client.js';
import { generateKeypair, keypairFileContent } from '../common/login.js';
import { GROUP, PLURAL, VERSION, type NosanaSecretBinding } from '../operator/api/v1alpha1.js';
import { createKubeClients, loadKubeConfig } from '../operator/kube/clients.js';

const { values } = parseArgs({
  options: {
    bindings: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '16' },
    'heap-snapshot': { type: 'boolean', default: false },
    // The V8 limits the operator is deployed with (the chart sets them in NODE_OPTIONS): its live heap is ~50 MB at a
    // thousand bindings, and without a limit V8 lets garbage pile up to several times that before collecting.
    'node-options': { type: 'string', default: '--max-old-space-size=96 --max-semi-space-size=4' },
  },
});
const count = Number(values.bindings);
const concurrency = Number(values.concurrency);
const cli = resolve(import.meta.dirname, '../cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'nss-bench-operator-'));
if (!process.env.KUBECONFIG) {
  // Without it client-node falls back to an in-cluster or localhost guess and fails with a message about TLS.
  console.error('KUBECONFIG is not set: run `bash test/env up kube` and `eval "$(bash test/env env)"`, or point it at a cluster');
  process.exit(2);
}
const kube = createKubeClients(loadKubeConfig());
const namespace = `bench-operator-${randomBytes(3).toString('hex')}`;

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

function run(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [cli, ...args], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((done, fail) => {
    child.once('exit', (code) => fail(new Error(`${args[0]} exited with ${code}: ${output.slice(-2000)}`)));
    const onData = (d: Buffer) => {
      output += d;
      const match = ready.exec(output);
      if (match) done({ child, match });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
}

/** Runs `task` once again after a 429 (the API server sheds load, or its storage for a CRD is re-initialising). */
async function retrying<T>(task: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await task();
    } catch (error) {
      if ((error as { code?: number }).code !== 429 || attempt >= 30) throw error;
      await new Promise((done) => setTimeout(done, 1000));
    }
  }
}

/** Runs `task` for 0..n-1 with at most `concurrency` in flight. */
async function pool(n: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < n) {
      const i = next++;
      await retrying(() => task(i));
    }
  }));
}

async function readyCount(): Promise<number> {
  const list = await retrying(() => kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace })) as { items: NosanaSecretBinding[] };
  return list.items.filter((b) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text.split('\n').filter((line) => line.startsWith(name)).reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

async function main(): Promise<void> {
  await retrying(() => kube.core.createNamespace({ body: { metadata: { name: namespace } } }));

  const { child: server, match } = await run(['server'], {
    PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${join(dir, 'db.sqlite')}`, SECRETS_STATE_DIR: join(dir, 'state'), LOG_LEVEL: 'warn',
  }, /open (http:\/\/\S+)/);
  const endpoint = match[1]!;
  const client = new SecretsClient({ endpoint });
  const owner = generateKeypair();
  const node = generateKeypair();
  const { token } = await client.login(owner);
  await client.putSecret(token, 'bench/token', 'bench-value');
  await client.putSecret(token, 'bench/password', 'bench-password');
  await pool(count, (i) => client.putGrant(token, `job-${i}`, ['bench/password', 'bench/token'], [node.address]));
  await kube.core.createNamespacedSecret({ namespace, body: { metadata: { name: 'node-key' }, stringData: { 'keypair.json': keypairFileContent(node) } } });

  // Baseline: the same number of plain objects through the same client.
  let start = performance.now();
  await pool(count, (i) => kube.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: `baseline-${i}` }, data: { a: 'b' } } }));
  const baselineSeconds = (performance.now() - start) / 1000;

  const metricsPort = await freePort();
  const nodeFlags = [...values['node-options']!.split(' ').filter(Boolean), ...(values['heap-snapshot'] ? ['--heapsnapshot-signal=SIGUSR2'] : [])];
  const operator = spawn(process.execPath, [...nodeFlags, cli, 'operator'], {
    cwd: dir, stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env, WATCH_NAMESPACE: namespace, METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1',
      LEADER_ELECT: 'false', NOSANA_SECRETS_ENDPOINT: endpoint, OPERATOR_WORKERS: values.workers!, LOG_LEVEL: 'warn',
    },
  });
  operator.once('exit', (code) => { if (code !== 0 && code !== null) process.stderr.write(`operator exited with ${code}\n`); });
  while (!(await fetch(`http://127.0.0.1:${metricsPort}/healthz`).then((r) => r.ok, () => false))) {
    await new Promise((done) => setTimeout(done, 100));
  }
  const idleRss = rssMb(operator.pid!);
  let peakRss = idleRss;
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMb(operator.pid!)); }, 100);

  start = performance.now();
  await pool(count, (i) => kube.custom.createNamespacedCustomObject({
    group: GROUP, version: VERSION, plural: PLURAL, namespace,
    body: {
      apiVersion: `${GROUP}/${VERSION}`, kind: 'NosanaSecretBinding', metadata: { name: `binding-${i}` },
      spec: {
        job: `job-${i}`, owner: owner.address, nodeCredentialsRef: { name: 'node-key' },
        secrets: [{ key: 'bench/token', env: 'TOKEN' }, { key: 'bench/password', env: 'PASSWORD' }],
      },
    },
  }));
  const createSeconds = (performance.now() - start) / 1000;
  let ready = 0;
  while ((ready = await readyCount()) < count) {
    if (performance.now() - start > 600_000) throw new Error(`only ${ready} of ${count} bindings Ready after 600 s`);
    // Each poll lists every binding: at ten thousand, polling often would load the API server under test.
    await new Promise((done) => setTimeout(done, count > 2000 ? 1000 : 250));
  }
  const readySeconds = (performance.now() - start) / 1000;
  clearInterval(sampler);
  const reconciles = await metric(metricsPort, 'nosana_secrets_operator_reconcile_total');
  const reconcileSeconds = await metric(metricsPort, 'nosana_secrets_operator_reconcile_duration_seconds_sum');
  const heapUsedMb = (await metric(metricsPort, 'nosana_secrets_nodejs_heap_size_used_bytes')) / 1048576;
  const heapTotalMb = (await metric(metricsPort, 'nosana_secrets_nodejs_heap_size_total_bytes')) / 1048576;
  const externalMb = (await metric(metricsPort, 'nosana_secrets_nodejs_external_memory_bytes')) / 1048576;

  const line = (label: string, value: string) => process.stdout.write(`${label.padEnd(46)} ${value}\n`);
  line('bindings', `${count} (operator node options: ${values['node-options'] || 'none'})`);
  line(`baseline: create ${count} ConfigMaps`, `${baselineSeconds.toFixed(2)} s`);
  line(`create ${count} bindings`, `${createSeconds.toFixed(2)} s (${(createSeconds / baselineSeconds).toFixed(2)}x baseline)`);
  line(`all ${count} Ready, from the first create`, `${readySeconds.toFixed(2)} s (${(readySeconds / baselineSeconds).toFixed(2)}x baseline; target < 60 s)`);
  line('reconciles', `${reconciles} (${(reconciles / readySeconds).toFixed(0)}/s, ${(count / readySeconds).toFixed(0)} bindings Ready/s)`);
  line('mean reconcile time', `${((reconcileSeconds / reconciles) * 1000).toFixed(0)} ms with ${values.workers} workers`);
  line('operator heap used / total, external (at the end)', `${heapUsedMb.toFixed(0)} MB / ${heapTotalMb.toFixed(0)} MB, ${externalMb.toFixed(0)} MB`);
  line('operator RSS idle / peak', `${idleRss.toFixed(0)} MB / ${peakRss.toFixed(0)} MB (target < 150 MB)`);

  if (values['heap-snapshot']) {
    operator.kill('SIGUSR2');
    line('heap snapshot', `written into ${dir} (load it in Chrome DevTools, Memory tab)`);
  }

  // Clean up: the bindings go (garbage collection takes their env Secrets), the namespace goes, then the operator stops.
  await kube.custom.deleteCollectionNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace });
  while ((await kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace }) as { items: unknown[] }).items.length > 0) {
    await new Promise((done) => setTimeout(done, 250));
  }
  await kube.core.deleteNamespace({ name: namespace });
  operator.kill('SIGTERM');
  server.kill('SIGTERM');
  kube.close();
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
