// The release's life on the test node, after the walk-through's first hour (docs/kubernetes.md steps 3-6, as the
// walk-through test installs it): a value changes (the mounted file and the env Secret follow), the grant is revoked
// (new mounts are refused with JobNotGranted, the env Secret goes), the server pod is deleted (it comes back with the
// data), the injector DaemonSet restarts under a running job pod, then `helm upgrade` and `helm uninstall` before the
// job namespace is deleted (nothing stays Terminating; no mount or pod cgroup stays on the host). Found here: job
// pods deleted after the uninstall can wait up to the kubelet's 2-minute CSI timeout (docs/kubernetes.md says so).
// Intervals are the test's own, short so the run stays short: the driver's rotationPollInterval and the binding's
// refreshInterval. The figures printed ("lifecycle: ...") are what a user would wait; they are checked against
// those intervals plus a stated margin, not against a speed target. The driver (1.6) rotates only when the kubelet
// re-publishes the volume (CSIDriver requiresRepublish), on its pod sync (syncFrequency, with up to 50 % jitter),
// and skips a re-publish within rotationPollInterval of the last one: a file can lag by both.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctr, env, helm, imageArchive, installCsiDriver, kubectl, kubectlAsync, removeRelease, sleep, waitUntil } from './node.js';

const root = join(import.meta.dirname, '../..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

const ROTATION_POLL_S = 15;
const REFRESH_S = 15;
/** The node kubelet's syncFrequency (test/node.sh), or the kubelet's default. */
const KUBELET_SYNC_S = Number(/^syncFrequency: (\d+)s$/m.exec(readFileSync(join(env('NS_TEST_NODE_STATE'), 'kubelet.yaml'), 'utf8'))?.[1] ?? 60);
const FILE_BOUND_S = ROTATION_POLL_S + KUBELET_SYNC_S * 1.5;
/** How long the kubelet waits for a CSI NodePublishVolume (csiTimeout in its CSI volume plugin). */
const CSI_TIMEOUT_S = 120;
/** Beyond the interval: one mount or one reconcile (a login and a read through the Service), and the poll here. */
const MARGIN_S = 20;
const JOB = 'lifecycle-job';
const RELEASE_NS = 'nosana-secrets';
const JOBS_NS = 'jobs';

let work: string;
let owner: string;
let node: string;
let portForward: { child: ChildProcess; port: number } | undefined;
/** Every pod uid this test saw, of the job and of the release: none may leave a mount or a cgroup behind. */
const podUids = new Set<string>();

function startPortForward(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(env('NS_TEST_KUBECTL'), ['-n', RELEASE_NS, 'port-forward', 'svc/nosana-secrets-server', ':4124'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('exit', (code) => reject(new Error(`kubectl port-forward exited (${code}): ${output}`)));
  });
}

async function reconnect(): Promise<void> {
  portForward?.child.kill();
  portForward = await waitUntil('a port-forward to the server', () => startPortForward(), 60_000, 1_000);
}

/** The CLI of this checkout, as the owner, through the port-forward (docs step 4). */
function cli(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, 'dist/cli/main.js'), ...args], {
      cwd: work,
      env: { ...process.env, NOSANA_SECRETS_ENDPOINT: `http://127.0.0.1:${portForward?.port}`, NOSANA_SECRETS_KEYPAIR: join(work, 'owner.json'), NOSANA_SECRETS_CONFIG_DIR: work },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (status) => (status === 0 ? resolve(stdout.trim()) : reject(new Error(`nosana-secrets ${args[0]}: ${stderr}`))));
    child.stdin.end(input ?? '');
  });
}

/** A job pod as in docs step 6 (uid 1000, the class's volume, the env Secret), that keeps running until deleted. */
function jobPod(name: string): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: JOBS_NS, labels: { 'nosana.io/job': JOB } },
    spec: {
      restartPolicy: 'Never', terminationGracePeriodSeconds: 2,
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [{
        name: 'job', image: 'busybox:1.36',
        command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1; done'],
        env: [{ name: 'OPENAI_KEY', valueFrom: { secretKeyRef: { name: JOB, key: 'OPENAI_KEY', optional: true } } }],
        volumeMounts: [{ name: 'secrets', mountPath: '/mnt/secrets', readOnly: true }],
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      }],
      volumes: [{
        name: 'secrets',
        csi: { driver: 'secrets-store.csi.k8s.io', readOnly: true, volumeAttributes: { secretProviderClass: JOB }, nodePublishSecretRef: { name: 'node-key' } },
      }],
    },
  });
}

interface PodState { uid: string; phase: string; restarts: number; deleting: boolean }

async function pod(namespace: string, name: string): Promise<PodState | undefined> {
  const out = await kubectlAsync(['-n', namespace, 'get', 'pod', name, '--ignore-not-found', '-o', 'json']);
  if (!out.trim()) return undefined;
  const p = JSON.parse(out) as { metadata: { uid: string; deletionTimestamp?: string }; status: { phase: string; containerStatuses?: { restartCount: number }[] } };
  podUids.add(p.metadata.uid);
  return { uid: p.metadata.uid, phase: p.status.phase, restarts: p.status.containerStatuses?.[0]?.restartCount ?? 0, deleting: !!p.metadata.deletionTimestamp };
}

async function startJobPod(name: string): Promise<number> {
  const started = Date.now();
  kubectl(['apply', '-f', '-'], jobPod(name));
  await waitUntil(`pod ${name} to run`, async () => (await pod(JOBS_NS, name))?.phase === 'Running', 120_000);
  return Date.now() - started;
}

const mountedFile = (name: string): Promise<string> => kubectlAsync(['-n', JOBS_NS, 'exec', name, '--', 'cat', '/mnt/secrets/openai-key']);

async function envSecretValue(): Promise<string | undefined> {
  const out = await kubectlAsync(['-n', JOBS_NS, 'get', 'secret', JOB, '--ignore-not-found', '-o', 'jsonpath={.data.OPENAI_KEY}']);
  return out ? Buffer.from(out, 'base64').toString() : undefined;
}

async function bindingReady(): Promise<string> {
  return kubectlAsync(['-n', JOBS_NS, 'get', 'nsb', JOB, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}']);
}

async function recordPods(namespace: string): Promise<void> {
  const out = await kubectlAsync(['-n', namespace, 'get', 'pods', '-o', 'jsonpath={.items[*].metadata.uid}']);
  for (const uid of out.split(/\s+/).filter(Boolean)) podUids.add(uid);
}

const seconds = (ms: number): string => (ms / 1000).toFixed(1);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'lifecycle-'));
  ctr(['images', 'import', imageArchive()]);
  removeRelease(); // whatever an interrupted run left
  installCsiDriver([`rotationPollInterval=${ROTATION_POLL_S}s`]);
  // docs/kubernetes.md step 3.
  kubectl(['create', 'namespace', RELEASE_NS]);
  kubectl(['create', 'namespace', JOBS_NS]);
  kubectl(['label', 'namespace', RELEASE_NS, 'pod-security.kubernetes.io/enforce=privileged']);
  helm(['install', 'nosana-secrets', join(root, 'charts/nosana-secrets'), '--namespace', RELEASE_NS,
    '--set', 'image.repository=ghcr.io/nosana-ci/nosana-secrets', '--set', `image.tag=${version}`,
    '--set', `operator.namespaces={${JOBS_NS}}`, '--wait', '--timeout', '5m']);
  // Step 4.
  await reconnect();
  owner = await cli(['keygen', '--out', 'owner.json']);
  node = await cli(['keygen', '--out', 'node.json']);
  await cli(['set', 'OPENAI_KEY', '-'], 'value-1');
  await cli(['grant', JOB, 'OPENAI_KEY', '--reader', node]);
  kubectl(['-n', JOBS_NS, 'create', 'secret', 'generic', 'node-key', `--from-file=keypair.json=${join(work, 'node.json')}`]);
  kubectl(['-n', JOBS_NS, 'label', 'secret', 'node-key', 'secrets-store.csi.k8s.io/used=true']);
  // Step 5, with the test's refresh interval.
  kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'secrets.nosana.io/v1alpha1', kind: 'NosanaSecretBinding', metadata: { name: JOB, namespace: JOBS_NS },
    spec: { job: JOB, owner, nodeCredentialsRef: { name: 'node-key' }, secrets: [{ key: 'OPENAI_KEY', env: 'OPENAI_KEY' }], refreshInterval: `${REFRESH_S}s` },
  }));
  kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'secrets-store.csi.x-k8s.io/v1', kind: 'SecretProviderClass', metadata: { name: JOB, namespace: JOBS_NS },
    spec: {
      provider: 'nosana',
      parameters: {
        endpoint: 'http://nosana-secrets-server.nosana-secrets.svc:4124', job: JOB, owner, nodeKeySecret: 'keypair.json',
        objects: '- key: OPENAI_KEY\n  fileName: openai-key\n  mode: "0444"\n',
      },
    },
  }));
  await waitUntil('the binding to be Ready', async () => (await bindingReady()) === 'True/SecretsResolved', 120_000);
  await startJobPod('reader-1');
  expect(await mountedFile('reader-1')).toBe('value-1');
}, 900_000);

afterAll(() => {
  portForward?.child.kill();
  removeRelease();
  rmSync(work, { recursive: true, force: true });
}, 300_000);

describe('the release on a node that runs pods, through its life', () => {
  it('brings a changed value into the mounted file within the rotation interval and into the env Secret within the refresh interval', async () => {
    const changed = Date.now();
    await cli(['set', 'OPENAI_KEY', '-'], 'value-2');
    const [fileMs, envMs] = await Promise.all([
      waitUntil('the mounted file to hold the new value', async () => (await mountedFile('reader-1')) === 'value-2' && Date.now() - changed, (FILE_BOUND_S + MARGIN_S) * 2_000, 500),
      waitUntil('the env Secret to hold the new value', async () => (await envSecretValue()) === 'value-2' && Date.now() - changed, (REFRESH_S + MARGIN_S) * 2_000, 500),
    ]);
    console.log(`lifecycle: a changed value reached the mounted file in ${seconds(fileMs)} s (rotationPollInterval ${ROTATION_POLL_S} s, kubelet syncFrequency ${KUBELET_SYNC_S} s), the env Secret in ${seconds(envMs)} s (refreshInterval ${REFRESH_S} s)`);
    expect(fileMs).toBeLessThanOrEqual((FILE_BOUND_S + MARGIN_S) * 1_000);
    expect(envMs).toBeLessThanOrEqual((REFRESH_S + MARGIN_S) * 1_000);
  }, 180_000);

  it('refuses a new pod\'s mount with JobNotGranted once the grant is revoked, and the operator deletes the env Secret', async () => {
    const revoked = Date.now();
    await cli(['revoke', JOB]);
    kubectl(['apply', '-f', '-'], jobPod('reader-2'));
    const [refusal, goneMs] = await Promise.all([
      waitUntil('a FailedMount event of reader-2', async () => {
        const events = JSON.parse(await kubectlAsync(['-n', JOBS_NS, 'get', 'events', '--field-selector', 'involvedObject.name=reader-2,reason=FailedMount', '-o', 'json'])) as { items: { message: string }[] };
        const event = events.items[0];
        return event && { message: event.message, ms: Date.now() - revoked };
      }, 120_000),
      waitUntil('the env Secret to be deleted', async () => (await envSecretValue()) === undefined && Date.now() - revoked, (REFRESH_S + MARGIN_S) * 2_000),
    ]);
    console.log(`lifecycle: after the revoke, a new pod's mount was refused in ${seconds(refusal.ms)} s, the env Secret was deleted in ${seconds(goneMs)} s (refreshInterval ${REFRESH_S} s)`);
    // The cause by name (the driver's event carries the provider's error code), not a stale token's KeyNotGranted.
    expect(refusal.message).toContain('provider error code JobNotGranted');
    expect(goneMs).toBeLessThanOrEqual((REFRESH_S + MARGIN_S) * 1_000);
    expect(await bindingReady()).toBe('False/AccessDenied');
    expect((await pod(JOBS_NS, 'reader-2'))?.phase).toBe('Pending');
    // As the guide says: a running pod keeps what it has.
    expect((await pod(JOBS_NS, 'reader-1'))?.phase).toBe('Running');

    // Granted again: the waiting pod mounts on its next try, the env Secret comes back.
    await cli(['grant', JOB, 'OPENAI_KEY', '--reader', node]);
    kubectl(['-n', JOBS_NS, 'annotate', 'nsb', JOB, `secrets.nosana.io/force-sync=${Date.now()}`, '--overwrite']);
    await waitUntil('the env Secret to come back', async () => (await envSecretValue()) === 'value-2', 60_000);
    await waitUntil('reader-2 to run', async () => (await pod(JOBS_NS, 'reader-2'))?.phase === 'Running', 180_000);
    expect(await mountedFile('reader-2')).toBe('value-2');
  }, 420_000);

  it('brings a deleted server pod back, with the stored data', async () => {
    const selector = 'app.kubernetes.io/component=server';
    const before = (await kubectlAsync(['-n', RELEASE_NS, 'get', 'pods', '-l', selector, '-o', 'jsonpath={.items[*].metadata.name}'])).trim();
    expect(before.split(' ')).toHaveLength(1);
    await recordPods(RELEASE_NS);
    const deleted = Date.now();
    await kubectlAsync(['-n', RELEASE_NS, 'delete', 'pod', before, '--wait=false']);
    const backMs = await waitUntil('a new server pod to be Ready', async () => {
      const ready = await kubectlAsync(['-n', RELEASE_NS, 'get', 'pods', '-l', selector, '-o',
        'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}']);
      return ready.split('\n').some((line) => !line.startsWith(`${before}=`) && line.endsWith('=True')) && Date.now() - deleted;
    }, 180_000);
    console.log(`lifecycle: a deleted server pod was replaced and Ready in ${seconds(backMs)} s`);
    // The port-forward ended with the old pod: a new one, as a user would start.
    const value = await waitUntil('the value read back through a new port-forward', async () => {
      await reconnect();
      return await cli(['get', 'OPENAI_KEY']);
    }, 60_000, 2_000);
    expect(value).toBe('value-2');
    // The data of the grant too: the operator reads through it again.
    kubectl(['-n', JOBS_NS, 'annotate', 'nsb', JOB, `secrets.nosana.io/force-sync=${Date.now()}`, '--overwrite']);
    await waitUntil('the binding to be Ready after the server came back', async () => (await bindingReady()) === 'True/SecretsResolved', 60_000);
  }, 300_000);

  it('keeps a job pod running while the injector DaemonSet restarts, and mounts a new pod after it', async () => {
    const running = await pod(JOBS_NS, 'reader-1');
    await recordPods(RELEASE_NS);
    await kubectlAsync(['-n', RELEASE_NS, 'rollout', 'restart', 'ds/nosana-secrets-injector']);
    await kubectlAsync(['-n', RELEASE_NS, 'rollout', 'status', 'ds/nosana-secrets-injector', '--timeout=3m']);
    expect(await pod(JOBS_NS, 'reader-1')).toEqual(running);
    expect(await mountedFile('reader-1')).toBe('value-2');
    const startMs = await startJobPod('reader-3');
    console.log(`lifecycle: after the injector restart, a new job pod ran (its volume mounted) in ${seconds(startMs)} s`);
    expect(await mountedFile('reader-3')).toBe('value-2');
  }, 300_000);

  it('takes a helm upgrade, then helm uninstall before the job namespace goes leaves nothing Terminating, mounted or in a cgroup', async () => {
    await recordPods(RELEASE_NS);
    helm(['upgrade', 'nosana-secrets', join(root, 'charts/nosana-secrets'), '-n', RELEASE_NS, '--reuse-values', '--set', 'injector.logLevel=debug', '--wait', '--timeout', '5m']);
    const level = await kubectlAsync(['-n', RELEASE_NS, 'get', 'ds', 'nosana-secrets-injector', '-o', 'jsonpath={.spec.template.spec.containers[0].env[?(@.name=="LOG_LEVEL")].value}']);
    expect(level).toBe('debug');
    await startJobPod('reader-4');
    expect(await mountedFile('reader-4')).toBe('value-2');
    await recordPods(RELEASE_NS);
    await recordPods(JOBS_NS);

    // The order that left bindings Terminating for good on the operator's finalizer: the release first, while job
    // pods run. A pod whose volume the kubelet is re-publishing then waits for that call to end: the driver waits
    // for the gone provider until the kubelet's CSI timeout (2 min). So: that timeout, plus a margin.
    helm(['uninstall', 'nosana-secrets', '-n', RELEASE_NS, '--wait', '--timeout', '3m']);
    const deleting = Date.now();
    await kubectlAsync(['delete', 'namespace', JOBS_NS, '--wait=false']);
    await waitUntil('the jobs namespace to be deleted', async () => !(await kubectlAsync(['get', 'namespace', JOBS_NS, '--ignore-not-found', '-o', 'name'])).trim(), (CSI_TIMEOUT_S + MARGIN_S * 3) * 1_000, 1_000)
      .catch(async (error: Error) => {
        // What holds it: the namespace's conditions name the remaining content and finalizers.
        const state = await kubectlAsync(['get', 'namespace', JOBS_NS, '-o', 'jsonpath={.status.conditions}']).catch(String);
        const left = await kubectlAsync(['-n', JOBS_NS, 'get', 'pods,nsb,secrets,secretproviderclasspodstatuses', '-o',
          'jsonpath={range .items[*]}{.kind}/{.metadata.name} deleting={.metadata.deletionTimestamp} finalizers={.metadata.finalizers} phase={.status.phase}{"\\n"}{end}']).catch(String);
        throw new Error(`${error.message}\n${state}\n${left}`);
      });
    console.log(`lifecycle: after helm uninstall, the jobs namespace (binding, 4 running job pods) was deleted in ${seconds(Date.now() - deleting)} s (bound: the kubelet's ${CSI_TIMEOUT_S} s CSI timeout + ${MARGIN_S * 3} s)`);
    await kubectlAsync(['delete', 'namespace', RELEASE_NS, '--wait=true', '--timeout=120s']);

    expect((await kubectlAsync(['get', 'nsb', '-A', '-o', 'name'])).trim()).toBe('');
    const pods = JSON.parse(await kubectlAsync(['get', 'pods', '-A', '-o', 'json'])) as { items: { metadata: { namespace: string; name: string; deletionTimestamp?: string } }[] };
    expect(pods.items.filter((p) => p.metadata.deletionTimestamp).map((p) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([]);
    expect(pods.items.filter((p) => [JOBS_NS, RELEASE_NS].includes(p.metadata.namespace))).toEqual([]);
    const namespaces = await kubectlAsync(['get', 'namespaces', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\\n"}{end}']);
    expect(namespaces.split('\n').filter((line) => line.endsWith('=Terminating'))).toEqual([]);

    // The host: the kubelet unmounts every volume of a deleted pod and removes its cgroups (give it a moment).
    expect(podUids.size).toBeGreaterThanOrEqual(8);
    const podsDir = join(env('NS_TEST_NODE_STATE'), 'kubelet/pods');
    const leftovers = async (): Promise<string[]> => {
      const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((line) => [...podUids].some((uid) => line.includes(`${podsDir}/${uid}/`)));
      // cgroupfs driver: kubepods/pod<uid> (Guaranteed), kubepods/{burstable,besteffort}/pod<uid>, in every hierarchy.
      const cgroups = readdirSync('/sys/fs/cgroup').flatMap((hierarchy) => ['kubepods', 'kubepods/burstable', 'kubepods/besteffort']
        .map((qos) => join('/sys/fs/cgroup', hierarchy, qos))
        .filter((dir) => existsSync(dir))
        .flatMap((dir) => readdirSync(dir).filter((name) => podUids.has(name.replace(/^pod/, ''))).map((name) => join(dir, name))));
      return [...mounts, ...cgroups];
    };
    await waitUntil('no mount or cgroup of the deleted pods on the host', async () => (await leftovers()).length === 0, 60_000, 1_000)
      .catch(async (error: Error) => { throw new Error(`${error.message}:\n${(await leftovers()).join('\n')}`); });
    expect(readFileSync('/proc/mounts', 'utf8').split('\n').filter((line) => line.includes(podsDir) && line.includes('kubernetes.io~csi'))).toEqual([]);
  }, 600_000);
});
