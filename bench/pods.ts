// Benchmark of what a pod waits for on a real node: time from create to Running of pods with a nosana CSI volume of
// 20 keys, beside identical pods with no volume at all, in the same run. Run (the node of test/run-node, with the
// image of `npm run image`, built when missing):
//   npm run bench:pods [-- --pods 20] [-- --keys 20] [-- --burst] [-- --keep]
// which is `npm run build && bash test/run-node --exec node dist/bench/pods.js ...`.
// It installs the Secrets Store CSI driver from its chart and this chart with its defaults (as test/node/walkthrough
// does), stores the keys through the API (a port-forward), grants them to one job for a node key, and makes one
// SecretProviderClass listing them all. Then, one pod at a time, a pod with the volume and one without, the order
// swapped every pair (ABBA) so drift hits both; each pod is deleted (and gone) before the next is created, after a
// random pause of up to 1 s (the kubelet's PLEG relist period: see below). t0 is the start of the create call; Running
// is when this process's watch sees `status.phase: Running` (Kubernetes timestamps are whole seconds). A first pair
// warms up (the injector's first login, the driver's first call) and is shown apart. Printed: p50 and p99 of each kind
// and of the difference (each volume pod against the plain pod of its pair), and create to scheduled / scheduled to
// Running. With 20 samples p99 is the largest one (nearest rank). The kubelet reports Running only after its PLEG
// relist (every 1 s) sees the started container, so create-to-Running is quantized by that relist: a volume that
// delays the container's start by d ms adds a whole relist period to a fraction (about d/1000) of the pods and nothing
// to the rest. `--samples FILE` writes each pod's moments (with wall-clock createdAt) to read beside the kubelet's log
// ($NS_TEST_STATE/logs/kubelet.log: MountVolume started / SetUp succeeded) and containerd's (RunPodSandbox,
// StartContainer). `--burst` creates all pods at once instead (throughput under load, not latency). `--keep` leaves
// the chart installed for the next run. Goal: the volume adds under 300 ms at p50 and under 1 s at p99.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, KubeConfig, Watch, type V1Pod } from '@kubernetes/client-node';
import { SecretsClient } from '../common/client.js';
import { runBenchmark, stopAtEnd } from './children.js';
import { generateKeypair, keypairFileContent } from '../common/login.js';
import { Progress } from '../common/progress.js';
import { PACKAGE_ROOT, RUNTIME_VERSION } from '../injector/provider.js';
import { SPC_GROUP, SPC_PLURAL, SPC_VERSION } from '../injector/secret-provider-class.js';
import { ctr, env as nodeEnv, helm, imageArchive, installCsiDriver, kubectl, removeRelease } from '../test/node/node.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '20' },
    keys: { type: 'string', default: '20' },
    burst: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    samples: { type: 'string' },
  },
});
const podCount = Number(values.pods);
const keyCount = Number(values.keys);
const namespace = 'bench-pods';
const job = 'bench-pods-job';

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** The chart with its defaults and the image built here, and its server reachable from this process. */
async function installChart(): Promise<string> {
  say('importing the image, installing the CSI driver and the chart...');
  ctr(['images', 'import', imageArchive()]);
  installCsiDriver();
  for (const name of ['nosana-secrets', namespace]) {
    if (!kubectl(['get', 'namespace', name, '--ignore-not-found', '-o', 'name'])) kubectl(['create', 'namespace', name]);
  }
  kubectl(['label', 'namespace', 'nosana-secrets', 'pod-security.kubernetes.io/enforce=privileged', '--overwrite']);
  helm(['upgrade', '--install', 'nosana-secrets', join(PACKAGE_ROOT, 'charts/nosana-secrets'), '--namespace', 'nosana-secrets',
    '--set', 'image.repository=ghcr.io/nosana-ci/nosana-secrets', '--set', `image.tag=${RUNTIME_VERSION}`, '--wait', '--timeout', '5m']);
  kubectl(['-n', 'nosana-secrets', 'rollout', 'status', 'ds/nosana-secrets-injector', '--timeout=2m']);
  // docs/kubernetes.md step 4: the API through a port-forward (port 0: kubectl picks one and prints it).
  const forward = spawn(nodeEnv('NS_TEST_KUBECTL'), ['-n', 'nosana-secrets', 'port-forward', 'svc/nosana-secrets-server', '0:4124'], { stdio: ['ignore', 'pipe', 'pipe'] });
  stopAtEnd(forward);
  const port = await new Promise<string>((done, fail) => {
    let seen = '';
    forward.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(seen);
      if (match) done(match[1]!);
    });
    forward.once('exit', (code) => fail(new Error(`kubectl port-forward exited (${code})`)));
  });
  return `http://127.0.0.1:${port}`;
}

/** Stores the keys, grants them to the job for a new node key; the node key Secret and the class that lists them. */
async function storeAndGrant(endpoint: string, kc: KubeConfig): Promise<void> {
  const api = new SecretsClient({ endpoint });
  const owner = generateKeypair();
  const node = generateKeypair();
  const { token } = await api.login(owner);
  const keys = Array.from({ length: keyCount }, (_, i) => `bench/key-${i}`);
  for (const key of keys) await api.putSecret(token, key, randomBytes(48).toString('base64'));
  await api.putGrant(token, job, keys, [node.address]);
  const core = kc.makeApiClient(CoreV1Api);
  await core.deleteNamespacedSecret({ name: 'node-key', namespace }).catch(() => undefined);
  await core.createNamespacedSecret({
    namespace,
    body: {
      // The driver passes a volume's nodePublishSecretRef to a provider only when the Secret carries this label.
      metadata: { name: 'node-key', labels: { 'secrets-store.csi.k8s.io/used': 'true' } },
      stringData: { 'keypair.json': keypairFileContent(node) },
    },
  });
  const custom = kc.makeApiClient(CustomObjectsApi);
  await custom.deleteNamespacedCustomObject({ group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL, name: job }).catch(() => undefined);
  await custom.createNamespacedCustomObject({
    group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL,
    body: {
      apiVersion: `${SPC_GROUP}/${SPC_VERSION}`, kind: 'SecretProviderClass', metadata: { name: job, namespace },
      spec: {
        provider: 'nosana',
        parameters: {
          endpoint: 'http://nosana-secrets-server.nosana-secrets.svc:4124', job, owner: owner.address, nodeKeySecret: 'keypair.json',
          objects: keys.map((key, i) => `- key: ${key}\n  fileName: key-${i}\n  mode: "0444"`).join('\n'),
        },
      },
    },
  });
}

type Kind = 'volume' | 'plain';

/** One pod's moments, in ms since this process started (performance.now()). */
interface Sample {
  kind: Kind;
  t0: number;
  /** t0 as wall-clock time (ms since the epoch), to find the pod in the kubelet's and containerd's logs. */
  createdAt: number;
  scheduled?: number;
  running?: number;
}

/** The job pod of docs/kubernetes.md step 6, kept running; `plain` has no volume (and no service account token). */
function podBody(name: string, kind: Kind): V1Pod {
  return {
    metadata: { name, labels: { 'nosana.io/job': job, bench: kind } },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 5,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'job',
        image: 'busybox:1.36',
        imagePullPolicy: 'IfNotPresent',
        command: ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        volumeMounts: kind === 'volume' ? [{ name: 'secrets', mountPath: '/mnt/secrets', readOnly: true }] : [],
      }],
      volumes: kind === 'volume'
        ? [{ name: 'secrets', csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: job }, nodePublishSecretRef: { name: 'node-key' } } }]
        : [],
    },
  };
}

/** Watches the namespace's pods and notes when each reaches each moment; resolves waiters on Running and on deletion. */
class PodClock {
  readonly samples = new Map<string, Sample>();
  private readonly waiters = new Map<string, { until: 'running' | 'deleted'; done: () => void; fail: (error: Error) => void }>();
  private abort?: AbortController;

  async start(kc: KubeConfig): Promise<void> {
    this.abort = await new Watch(kc).watch(`/api/v1/namespaces/${namespace}/pods`, {}, (type: string, pod: V1Pod) => this.seen(type, pod), (error: unknown) => {
      if (error && !(error instanceof Error && error.name === 'AbortError')) {
        for (const waiter of this.waiters.values()) waiter.fail(new Error(`the pod watch ended: ${String(error)}`));
      }
    });
  }

  stop(): void {
    this.abort?.abort();
  }

  wait(name: string, until: 'running' | 'deleted', timeoutMs = 180_000): Promise<void> {
    return new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`pod ${name} not ${until} within ${timeoutMs / 1000} s: kubectl -n ${namespace} describe pod ${name}`)), timeoutMs);
      this.waiters.set(name, { until, done: () => { clearTimeout(timer); done(); }, fail });
    });
  }

  private seen(type: string, pod: V1Pod): void {
    const now = performance.now();
    const name = pod.metadata?.name ?? '';
    const sample = this.samples.get(name);
    const waiter = this.waiters.get(name);
    if (type === 'DELETED') {
      if (waiter?.until === 'deleted') { this.waiters.delete(name); waiter.done(); }
      return;
    }
    if (!sample) return;
    if (sample.scheduled === undefined && pod.spec?.nodeName) sample.scheduled = now;
    if (sample.running === undefined && pod.status?.phase === 'Running') {
      sample.running = now;
      if (waiter?.until === 'running') { this.waiters.delete(name); waiter.done(); }
    }
    if (waiter?.until === 'running' && (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded')) {
      waiter.fail(new Error(`pod ${name} ended (${pod.status.phase}) before it was seen Running`));
    }
  }
}

/** Nearest rank: the smallest sample with at least p% of the samples at or below it (p99 of 20 is the largest). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const core = kc.makeApiClient(CoreV1Api);
  const endpoint = await installChart();
  await storeAndGrant(endpoint, kc);
  const clock = new PodClock();
  await clock.start(kc);
  const run = randomBytes(2).toString('hex');

  const create = async (name: string, kind: Kind): Promise<void> => {
    clock.samples.set(name, { kind, t0: performance.now(), createdAt: Date.now() });
    await core.createNamespacedPod({ namespace, body: podBody(name, kind) });
  };
  const remove = async (names: string[]): Promise<void> => {
    const gone = names.map((name) => clock.wait(name, 'deleted'));
    await Promise.all(names.map((name) => core.deleteNamespacedPod({ name, namespace })));
    await Promise.all(gone);
  };

  // Warm-up pair: the injector's first login and class read, the driver's first call; shown, not counted.
  for (const kind of ['volume', 'plain'] as const) {
    const name = `warm-${kind}-${run}`;
    const running = clock.wait(name, 'running');
    await create(name, kind);
    await running;
    await remove([name]);
  }

  const pairs: { volume: string; plain: string }[] = [];
  const progress = new Progress(values.burst ? `${podCount * 2} pods created at once` : `${podCount} pairs of pods, one pod at a time`, { unit: 'pods Running', total: podCount * 2 });
  if (values.burst) {
    const names: string[] = [];
    for (let i = 0; i < podCount; i++) {
      const pair = { volume: `volume-${i}-${run}`, plain: `plain-${i}-${run}` };
      pairs.push(pair);
      names.push(...(i % 2 === 0 ? [pair.volume, pair.plain] : [pair.plain, pair.volume]));
    }
    const running = names.map((name) => clock.wait(name, 'running', 600_000).then(() => progress.add(1)));
    for (const name of names) await create(name, name.startsWith('volume') ? 'volume' : 'plain');
    await Promise.all(running);
    progress.done();
    await remove(names);
  } else {
    for (let i = 0; i < podCount; i++) {
      const pair = { volume: `volume-${i}-${run}`, plain: `plain-${i}-${run}` };
      pairs.push(pair);
      for (const kind of (i % 2 === 0 ? ['volume', 'plain'] : ['plain', 'volume']) as Kind[]) {
        // A random pause of up to one kubelet PLEG period (1 s): the previous pod's deletion ends on a PLEG relist,
        // and a pod created right then would always start at the same phase of the relist that reports it Running.
        await new Promise((done) => setTimeout(done, Math.random() * 1000));
        const running = clock.wait(pair[kind], 'running');
        await create(pair[kind], kind);
        await running;
        progress.add(1);
        await remove([pair[kind]]);
      }
    }
    progress.done();
  }
  clock.stop();

  const sample = (name: string) => clock.samples.get(name)!;
  const toRunning = (s: Sample) => s.running! - s.t0;
  const of = (kind: Kind) => pairs.map((pair) => sample(pair[kind]));
  const differences = pairs.map((pair) => toRunning(sample(pair.volume)) - toRunning(sample(pair.plain)));
  const ms = (value: number) => `${value.toFixed(0).padStart(6)} ms`;
  const warm = (kind: Kind) => toRunning(sample(`warm-${kind}-${run}`));

  console.log(`create to Running, ${podCount} pods of each kind ${values.burst ? 'created at once, interleaved' : 'one at a time, alternating (ABBA)'}; nosana CSI volume of ${keyCount} keys`);
  console.log(`p99 of ${podCount} samples is the nearest rank (${Math.ceil(0.99 * podCount)}th of ${podCount}${podCount <= 100 ? ': the largest' : ''})`);
  console.log('                              p50         p99         min         max');
  const row = (label: string, list: number[]) =>
    console.log(`${label.padEnd(26)} ${ms(percentile(list, 50))}   ${ms(percentile(list, 99))}   ${ms(Math.min(...list))}   ${ms(Math.max(...list))}`);
  row('no volume (baseline)', of('plain').map(toRunning));
  row(`CSI volume, ${keyCount} keys`, of('volume').map(toRunning));
  row('difference, per pair', differences);
  const p50Ratio = percentile(of('volume').map(toRunning), 50) / percentile(of('plain').map(toRunning), 50);
  console.log(`volume / baseline at p50: ${p50Ratio.toFixed(2)}x; warm-up pair (not counted): volume ${warm('volume').toFixed(0)} ms, plain ${warm('plain').toFixed(0)} ms`);
  console.log('\nwhere the time goes (p50 of each step)   create->scheduled   scheduled->Running');
  for (const kind of ['plain', 'volume'] as const) {
    const list = of(kind);
    const step = (from: (s: Sample) => number | undefined, to: (s: Sample) => number | undefined) => {
      const spans = list.filter((s) => from(s) !== undefined && to(s) !== undefined).map((s) => to(s)! - from(s)!);
      return spans.length ? ms(percentile(spans, 50)) : '     (n/a)';
    };
    console.log(`${kind.padEnd(40)} ${step((s) => s.t0, (s) => s.scheduled).padStart(17)}   ${step((s) => s.scheduled, (s) => s.running).padStart(17)}`);
  }
  const p50 = percentile(differences, 50);
  const p99 = percentile(differences, 99);
  console.log(`target: the volume adds under 300 ms at p50 and under 1 s at p99: ${p50 < 300 && p99 < 1000 ? 'met' : 'NOT met'} (${p50.toFixed(0)} ms, ${p99.toFixed(0)} ms)`);

  if (values.samples) writeFileSync(values.samples, JSON.stringify(Object.fromEntries(clock.samples), null, 1));
  kubectl(['delete', 'namespace', namespace, '--wait=true', '--timeout=120s']);
  if (!values.keep) removeRelease();
}

runBenchmark(main);
