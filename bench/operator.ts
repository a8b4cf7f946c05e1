// Benchmark of the operator against a real kube-apiserver. Run: `bash test/env up kube && npm run build &&
// KUBECONFIG=... node dist/bench/operator.js [--bindings 1000] [--workers 16] [--concurrency 16]`.
// The secrets server and the operator run as their own processes (so the operator's RSS is its own). Printed: the
// baseline (time to create as many plain ConfigMaps, same client, same concurrency), the time to create the bindings,
// the time until every binding is Ready (the issue's target: 10,000 in under 60 s), reconciles per second, the
// operator's calls per binding (API server by verb and resource, secrets server by call, from its metrics), the CPU
// each process spent per binding (the API server's and etcd's too when they run on this machine, as with test/env;
// other users of a shared API server add to theirs) and the operator's peak RSS (target: under 200 MB).
// With --writes, the operator does not run: the API server's CPU for each kind of write a reconcile makes is measured
// instead, beside a ConfigMap create.
// Readiness is followed with a watch, not by listing every binding again and again, which at ten thousand would load
// the API server under test. The namespace is deleted at the end, and on failure or Ctrl-C too.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { Watch } from '@kubernetes/client-node';
import { SecretsClient } from '../common/client.js';
import { generateKeypair, keypairFileContent } from '../common/login.js';
import { createLogger } from '../common/log.js';
import { API_VERSION, GROUP, KIND, PLURAL, Reason, VERSION, type NosanaSecretBinding } from '../operator/api/v1alpha1.js';
import { EventRecorder } from '../operator/events.js';
import { createKubeClients, loadKubeConfig, statusOf } from '../operator/kube/clients.js';
import { newEnvSecret } from '../operator/reconcile/env-secret.js';
import { buildReadyCondition } from '../operator/reconcile/status.js';
import { cpuSeconds, pidsNamed, rssMb, treeCpuSeconds } from './proc.js';

const { values } = parseArgs({
  options: {
    bindings: { type: 'string', default: '1000' },
    workers: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '16' },
    'heap-snapshot': { type: 'boolean', default: false },
    // Instead of running the operator: what each write of a reconcile costs the API server and etcd (see measureWrites).
    writes: { type: 'boolean', default: false },
    // The server's limits of logins and job token exchanges per node key and per source address
    // (LOGIN_RATE_LIMIT_PER_ADDRESS and _PER_SOURCE, 600 and 1,200 a minute per server process by default) would
    // bound the rate on their own: one node key on one address serves every binding here. Off unless given.
    'server-login-limit': { type: 'string', default: '0' },
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
const kubeConfig = loadKubeConfig();
const kube = createKubeClients(kubeConfig);
const namespace = `bench-operator-${randomBytes(3).toString('hex')}`;

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

/** The API server's and etcd's processes when they run on this machine (as with test/env), and their CPU seconds. */
function apiServerCpuMeter(): { pids: number[]; cpu: () => number } {
  const pids = [...pidsNamed('kube-apiserver'), ...pidsNamed('etcd')];
  return { pids, cpu: () => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) };
}

const isReady = (b: NosanaSecretBinding) => b.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function readyCount(): Promise<number> {
  const list = await retrying(() => kube.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace })) as { items: NosanaSecretBinding[] };
  return list.items.filter(isReady).length;
}

/** Follows the namespace's bindings with a watch (resumed if it drops); `ready` holds the names of Ready ones. */
async function followReadiness(ready: Set<string>): Promise<() => void> {
  let stopped = false;
  let resourceVersion = '';
  let abort: AbortController | undefined;
  const watch = new Watch(kubeConfig);
  const start = async (): Promise<void> => {
    abort = await watch.watch(`/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}`, { resourceVersion, allowWatchBookmarks: true },
      (phase: string, binding: NosanaSecretBinding) => {
        resourceVersion = binding.metadata?.resourceVersion ?? resourceVersion;
        if (phase === 'BOOKMARK') return;
        if (phase !== 'DELETED' && isReady(binding)) ready.add(binding.metadata.name);
        else ready.delete(binding.metadata.name);
      },
      () => { if (!stopped) setTimeout(() => { start().catch(() => undefined); }, 500); });
  };
  await start();
  return () => { stopped = true; abort?.abort(); };
}

/** Every series of `name` in a Prometheus text page, by its labels. */
function series(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`)).map((line) => {
    const labels = Object.fromEntries([...line.slice(name.length + 1, line.lastIndexOf('}')).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    return { labels, value: Number(line.split(' ').pop()) };
  });
}

const children: ChildProcess[] = [];

/**
 * Deletes the namespace and waits until it is gone (garbage collection takes the env Secrets with their bindings;
 * the operator holds no finalizer), so that the next run starts on a quiet API server.
 */
async function cleanUp(): Promise<void> {
  try {
    await kube.core.deleteNamespace({ name: namespace });
  } catch (error) {
    if (statusOf(error) !== 404) throw error;
  }
  const deadline = performance.now() + Math.max(120_000, count * 60);
  while (performance.now() < deadline) {
    try {
      await kube.core.readNamespace({ name: namespace });
    } catch (error) {
      if (statusOf(error) === 404) return;
    }
    await new Promise((done) => setTimeout(done, 1000));
  }
  process.stderr.write(`namespace ${namespace} still there after ${(Math.max(120_000, count * 60) / 1000).toFixed(0)} s: it goes on being deleted\n`);
}

async function main(): Promise<void> {
  await retrying(() => kube.core.createNamespace({ body: { metadata: { name: namespace } } }));
  process.once('SIGINT', () => { process.stderr.write('interrupted: cleaning up\n'); cleanUp().finally(() => process.exit(130)); });
  try {
    await (values.writes ? measureWrites() : measure());
  } finally {
    process.stderr.write(`deleting namespace ${namespace}\n`);
    await cleanUp();
    for (const child of children) child.kill('SIGTERM');
    kube.close();
  }
}

async function measure(): Promise<void> {
  const { pids: apiServerPids, cpu: apiServerCpu } = apiServerCpuMeter();

  const { child: server, match } = await run(['server'], {
    PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${join(dir, 'db.sqlite')}`, SECRETS_STATE_DIR: join(dir, 'state'), LOG_LEVEL: 'warn',
    LOGIN_RATE_LIMIT_PER_ADDRESS: values['server-login-limit']!, LOGIN_RATE_LIMIT_PER_SOURCE: values['server-login-limit']!,
  }, /open (http:\/\/\S+)/);
  children.push(server);
  const serverCpu = () => treeCpuSeconds(server.pid!);
  const endpoint = match[1]!;
  const client = new SecretsClient({ endpoint });
  const owner = generateKeypair();
  const node = generateKeypair();
  const { token } = await client.login(owner);
  await client.putSecret(token, 'bench/token', 'bench-value');
  await client.putSecret(token, 'bench/password', 'bench-password');
  process.stderr.write(`granting ${count} jobs\n`);
  await pool(count, (i) => client.putGrant(token, `job-${i}`, ['bench/password', 'bench/token'], [node.address]));
  await kube.core.createNamespacedSecret({ namespace, body: { metadata: { name: 'node-key' }, stringData: { 'keypair.json': keypairFileContent(node) } } });

  // Baseline: the same number of plain objects through the same client.
  process.stderr.write(`baseline: creating ${count} ConfigMaps\n`);
  let apiCpuStart = apiServerCpu();
  let start = performance.now();
  await pool(count, (i) => kube.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: `baseline-${i}` }, data: { a: 'b' } } }));
  const baselineSeconds = (performance.now() - start) / 1000;
  const baselineApiCpu = apiServerCpu() - apiCpuStart;

  const metricsPort = await freePort();
  const nodeFlags = [...values['node-options']!.split(' ').filter(Boolean), ...(values['heap-snapshot'] ? ['--heapsnapshot-signal=SIGUSR2'] : [])];
  const operator = spawn(process.execPath, [...nodeFlags, cli, 'operator'], {
    cwd: dir, stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env, WATCH_NAMESPACE: namespace, METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1',
      LEADER_ELECT: 'false', NOSANA_SECRETS_ENDPOINT: endpoint, OPERATOR_WORKERS: values.workers!, LOG_LEVEL: 'warn',
    },
  });
  children.push(operator);
  operator.once('exit', (code) => { if (code !== 0 && code !== null) process.stderr.write(`operator exited with ${code}\n`); });
  while (!(await fetch(`http://127.0.0.1:${metricsPort}/healthz`).then((r) => r.ok, () => false))) {
    await new Promise((done) => setTimeout(done, 100));
  }
  const idleRss = rssMb(operator.pid!);
  let peakRss = idleRss;
  const sampler = setInterval(() => { peakRss = Math.max(peakRss, rssMb(operator.pid!)); }, 100);
  const ready = new Set<string>();
  const stopFollowing = await followReadiness(ready);

  process.stderr.write(`creating ${count} bindings\n`);
  const cpuStart = { operator: cpuSeconds(operator.pid!), server: serverCpu(), self: process.cpuUsage() };
  apiCpuStart = apiServerCpu();
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
  let lastReport = 0;
  while (ready.size < count) {
    const elapsed = performance.now() - start;
    if (elapsed > Math.max(600_000, count * 120)) throw new Error(`only ${ready.size} of ${count} bindings Ready after ${(elapsed / 1000).toFixed(0)} s`);
    if (elapsed - lastReport > 10_000) {
      lastReport = elapsed;
      process.stderr.write(`${ready.size} of ${count} Ready after ${(elapsed / 1000).toFixed(0)} s\n`);
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  const readySeconds = (performance.now() - start) / 1000;
  const cpu = {
    operator: cpuSeconds(operator.pid!) - cpuStart.operator,
    server: serverCpu() - cpuStart.server,
    apiServer: apiServerCpu() - apiCpuStart,
    bench: (() => { const used = process.cpuUsage(cpuStart.self); return (used.user + used.system) / 1e6; })(),
  };
  clearInterval(sampler);
  stopFollowing();
  const confirmed = await readyCount();
  if (confirmed !== count) throw new Error(`the watch saw ${count} Ready, a list ${confirmed}`);

  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const total = (name: string) => series(text, name).reduce((sum, s) => sum + s.value, 0);
  const reconciles = total('nosana_secrets_operator_reconcile_total');
  const reconcileSeconds = total('nosana_secrets_operator_reconcile_duration_seconds_sum');
  const kubeCalls = series(text, 'nosana_secrets_operator_kube_requests_total').sort((a, b) => b.value - a.value);
  const serverCalls = series(text, 'nosana_secrets_operator_server_calls_total').sort((a, b) => b.value - a.value);
  const errors = series(text, 'nosana_secrets_operator_reconcile_errors_total').filter((s) => s.value > 0);
  const mb = (name: string) => (total(name) / 1048576).toFixed(0);

  const perBinding = (n: number) => (n / count).toFixed(2);
  const ms = (seconds: number) => `${((seconds / count) * 1000).toFixed(2)} ms`;
  const line = (label: string, value: string) => process.stdout.write(`${label.padEnd(46)} ${value}\n`);
  line('bindings', `${count} (operator node options: ${values['node-options'] || 'none'}; ${values.workers} workers)`);
  line('secrets server', `LOGIN_RATE_LIMIT_PER_ADDRESS and _PER_SOURCE=${values['server-login-limit']} (0: off; defaults 600 and 1,200 a minute per process)`);
  line(`baseline: create ${count} ConfigMaps`, `${baselineSeconds.toFixed(2)} s (${(count / baselineSeconds).toFixed(0)}/s)`);
  line(`create ${count} bindings`, `${createSeconds.toFixed(2)} s (${(createSeconds / baselineSeconds).toFixed(2)}x baseline)`);
  line(`all ${count} Ready, from the first create`, `${readySeconds.toFixed(2)} s (${(readySeconds / baselineSeconds).toFixed(2)}x baseline; target < 60 s for 10,000)`);
  line('reconciles', `${reconciles} (${(reconciles / readySeconds).toFixed(0)}/s, ${(count / readySeconds).toFixed(0)} bindings Ready/s)`);
  line('mean reconcile time', `${((reconcileSeconds / reconciles) * 1000).toFixed(0)} ms`);
  if (errors.length > 0) line('reconcile errors', errors.map((s) => `${s.labels.reason} ${s.value}`).join(', '));
  line('operator API calls per binding', `${perBinding(kubeCalls.reduce((sum, s) => sum + s.value, 0))}: ${kubeCalls.map((s) => `${s.labels.verb} ${s.labels.resource} ${perBinding(s.value)}`).join(', ')}`);
  line('operator secrets-server calls per binding', `${perBinding(serverCalls.reduce((sum, s) => sum + s.value, 0))}: ${serverCalls.map((s) => `${s.labels.call} ${s.labels.outcome} ${perBinding(s.value)}`).join(', ')}`);
  line('CPU per binding: operator, secrets server', `${ms(cpu.operator)}, ${ms(cpu.server)} (bench client ${ms(cpu.bench)})`);
  if (apiServerPids.length > 0) {
    line('CPU per object: API server + etcd', `${ms(cpu.apiServer)} per binding (its create included), ${ms(baselineApiCpu)} per ConfigMap`);
  }
  line('operator heap used / total, external (at the end)', `${mb('nosana_secrets_nodejs_heap_size_used_bytes')} MB / ${mb('nosana_secrets_nodejs_heap_size_total_bytes')} MB, ${mb('nosana_secrets_nodejs_external_memory_bytes')} MB`);
  line('operator RSS idle / peak', `${idleRss.toFixed(0)} MB / ${peakRss.toFixed(0)} MB (target < 200 MB)`);

  if (values['heap-snapshot']) {
    operator.kill('SIGUSR2');
    line('heap snapshot', `written into ${dir} (load it in Chrome DevTools, Memory tab)`);
  }
}

/**
 * --writes: the API server's and etcd's CPU for each write a first reconcile makes, without the operator running:
 * `--bindings` each of the user's binding create, then the operator's own writes with the bodies it sends (the status
 * JSON patch, the env Secret create, the Event), each beside as many ConfigMap creates (measured before and after,
 * averaged). This says which writes bound the reconcile rate when the API server's CPU does.
 */
async function measureWrites(): Promise<void> {
  const { pids: apiServerPids, cpu: apiServerCpu } = apiServerCpuMeter();
  if (apiServerPids.length === 0) throw new Error('--writes reads the CPU of kube-apiserver and etcd from /proc: run it where they run (bash test/env up kube)');
  const perWrite = async (label: string, task: (i: number) => Promise<unknown>): Promise<number> => {
    process.stderr.write(`${label}: ${count} writes\n`);
    const before = apiServerCpu();
    await pool(count, task);
    return (apiServerCpu() - before) / count;
  };
  const configMaps = (round: string) => perWrite(`ConfigMap create (${round})`, (i) =>
    kube.core.createNamespacedConfigMap({ namespace, body: { metadata: { name: `baseline-${round}-${i}` }, data: { a: 'b' } } }));

  const baselineBefore = await configMaps('before');
  const bindings: NosanaSecretBinding[] = [];
  const create = await perWrite('binding create (the user\'s)', async (i) => {
    bindings[i] = await kube.custom.createNamespacedCustomObject({
      group: GROUP, version: VERSION, plural: PLURAL, namespace,
      body: {
        apiVersion: API_VERSION, kind: KIND, metadata: { name: `binding-${i}` },
        spec: { job: `job-${i}`, owner: generateKeypair().address, nodeCredentialsRef: { name: 'node-key' }, secrets: [{ key: 'bench/token', env: 'TOKEN' }, { key: 'bench/password', env: 'PASSWORD' }] },
      },
    }) as NosanaSecretBinding;
  });
  const message = '2 key(s) resolved; Secret binding holds 2 variable(s)';
  const status = await perWrite('status patch (the operator\'s JSON patch)', (i) => {
    const binding = bindings[i]!;
    const now = new Date();
    const value = {
      observedGeneration: binding.metadata.generation, secretName: binding.metadata.name, lastSyncTime: now.toISOString(),
      keys: [{ key: 'bench/password', version: 1 }, { key: 'bench/token', version: 1 }],
      conditions: [buildReadyCondition(binding, 'True', Reason.SecretsResolved, message, now)],
    };
    return kube.custom.patchNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name: binding.metadata.name, body: [{ op: 'add', path: '/status', value }] });
  });
  const secret = await perWrite('env Secret create', (i) => kube.core.createNamespacedSecret({
    namespace, body: newEnvSecret(bindings[i]!, bindings[i]!.metadata.name, { TOKEN: Buffer.from('bench-value').toString('base64'), PASSWORD: Buffer.from('bench-password').toString('base64') }),
  }));
  const events = new EventRecorder(kube.events, 'bench', createLogger('bench'));
  const event = await perWrite('Event create', (i) => events.record(bindings[i]!, 'Normal', Reason.SecretsResolved, message));
  const baseline = (baselineBefore + await configMaps('after')) / 2;

  const line = (label: string, seconds: number) =>
    process.stdout.write(`${label.padEnd(44)} ${(seconds * 1000).toFixed(2).padStart(6)} ms  ${(seconds / baseline).toFixed(2).padStart(5)}x ConfigMap\n`);
  process.stdout.write(`API server + etcd CPU per write, ${count} of each, concurrency ${concurrency}, no operator running\n`);
  line('ConfigMap create (baseline, mean of 2)', baseline);
  line('binding create (the user\'s)', create);
  line('status patch (operator)', status);
  line('env Secret create (operator)', secret);
  line('Event create (operator)', event);
  line('a first reconcile: the three above', status + secret + event);
  line('a binding: its create and first reconcile', create + status + secret + event);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
