// The real Secrets Store CSI driver (v1.6, built from its Go module by test/env) calls this injector: a
// NodePublishVolume on the driver's CSI socket, as the kubelet sends it, makes the driver read the SecretProviderClass
// from the real kube-apiserver, dial <providers dir>/nosana.sock, and write the files onto a real tmpfs mount.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ApiextensionsV1Api, CoreV1Api, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newPod, secretValue, startWorld, type InjectorWorld, type Pod } from './world.js';

const NODE_ID = 'nosana-test-node';
let world: InjectorWorld;
let driver: ChildProcess;
let node: grpc.Client & Record<string, unknown>;
let driverLog = '';
const workDir = mkdtempSync(join(tmpdir(), 'nsi-csi-'));
const mounted: string[] = [];
const apiKey = secretValue('csi-api');
const victim = secretValue('csi-victim');

function required(name: string, fix: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: ${fix}`);
  return value;
}

/** The CSI spec's csi.proto, from the module cache next to the driver's module (the version its go.mod names). */
function csiProtoPath(crdDir: string): string {
  const driverModule = join(crdDir, '..', '..', '..');
  const spec = /github\.com\/container-storage-interface\/spec (v[0-9.]+)/.exec(readFileSync(join(driverModule, 'go.mod'), 'utf8'));
  if (!spec) throw new Error('the driver\'s go.mod names no container-storage-interface/spec version');
  const path = join(dirname(dirname(driverModule)), 'github.com', 'container-storage-interface', `spec@${spec[1]}`, 'csi.proto');
  if (!existsSync(path)) throw new Error(`${path} is missing: run \`bash test/env up csi-driver\`, which downloads the driver's module`);
  return path;
}

async function applyPodStatusCrd(crdDir: string): Promise<void> {
  const file = readdirSync(crdDir).find((name) => name.endsWith('_secretproviderclasspodstatuses.yaml'))!;
  const crd = YAML.parse(readFileSync(join(crdDir, file), 'utf8')) as V1CustomResourceDefinition;
  await world.kc.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({ body: crd })
    .catch((error: { code?: number }) => { if (error.code !== 409) throw error; });
}

function unary<T>(method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    (node[method] as (req: object, options: grpc.CallOptions, cb: (error: grpc.ServiceError | null, response: T) => void) => void)
      .call(node, request, { deadline: Date.now() + 15_000 }, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** The NodePublishVolume the kubelet sends for an inline CSI volume (podInfoOnMount, read-only, ephemeral). */
async function publish(pod: Pod, secretProviderClass: string, podAttributes: Record<string, string> = {}): Promise<string> {
  const targetPath = join(workDir, 'pods', pod.uid, 'volumes', 'kubernetes.io~csi', 'secrets', 'mount');
  // Since Kubernetes 1.20 the kubelet creates only the parent; the driver creates the target directory itself.
  mkdirSync(dirname(targetPath), { recursive: true });
  if (!mounted.includes(targetPath)) mounted.push(targetPath);
  await unary('NodePublishVolume', {
    volume_id: `csi-${pod.uid}`,
    target_path: targetPath,
    volume_capability: { mount: {}, access_mode: { mode: 'SINGLE_NODE_READER_ONLY' } },
    readonly: true,
    secrets: {},
    volume_context: {
      secretProviderClass, ...podAttributes,
      'csi.storage.k8s.io/pod.name': pod.name, 'csi.storage.k8s.io/pod.namespace': pod.namespace,
      'csi.storage.k8s.io/pod.uid': pod.uid, 'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount,
      'csi.storage.k8s.io/ephemeral': 'true',
    },
  });
  return targetPath;
}

/** A Pod object on this test's node, so the driver can own its SecretProviderClassPodStatus by the pod. */
async function createPod(name: string): Promise<Pod> {
  const core = world.kc.makeApiClient(CoreV1Api);
  const created = await core.createNamespacedPod({
    namespace: world.namespace,
    body: { metadata: { name }, spec: { nodeName: NODE_ID, containers: [{ name: 'job', image: 'busybox:1.36' }] } },
  });
  return { ...newPod(world.namespace, name), uid: created.metadata!.uid! };
}

beforeAll(async () => {
  const binary = required('NS_TEST_CSI_DRIVER', 'run `bash test/env up csi-driver` (or `npm test`), which builds the Secrets Store CSI driver');
  const crdDir = required('NS_TEST_CSI_CRDS', 'run `bash test/env up csi-driver` (or `npm test`)');
  world = await startWorld('csi');
  await applyPodStatusCrd(crdDir);
  await world.put('openai/api-key', apiKey);
  await world.put('victim-key', victim);
  await world.grant('csi-job', ['openai/api-key']);
  await world.grant('victim-job', ['victim-key']);
  await world.createClass('csi-job', { owner: world.owner.address, job: 'csi-job', objects: '- key: openai/api-key\n  fileName: openai-key\n  mode: "0440"' });

  const csiSocket = join(workDir, 'csi.sock');
  driver = spawn(binary, [
    `--endpoint=unix://${csiSocket}`, `--nodeid=${NODE_ID}`, `--provider-volume=${world.socketDir}`,
    `--additional-provider-volume-paths=${world.socketDir}`, '--metrics-addr=0', '-v=2',
    // Rotation as the chart's driver values turn it on: the kubelet re-sends NodePublishVolume (requiresRepublish).
    // The driver skips a republish within the poll interval of the last write; keep it short for the test.
    '--enable-secret-rotation=true', '--rotation-poll-interval=300ms',
  ], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      driverLog += chunk.toString('utf8');
      if (/Listening for connections/i.test(driverLog)) resolve();
    };
    driver.stdout!.on('data', onData);
    driver.stderr!.on('data', onData);
    driver.once('exit', (code) => reject(new Error(`the CSI driver exited (${code}):\n${driverLog.slice(-3000)}`)));
  });
  const tooSlow = setTimeout(() => driver.kill('SIGKILL'), 60_000); // fails the wait above with the driver's log
  await ready.finally(() => clearTimeout(tooSlow));

  const definition = protoLoader.loadSync(csiProtoPath(crdDir), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const csi = (grpc.loadPackageDefinition(definition).csi as grpc.GrpcObject).v1 as grpc.GrpcObject;
  node = new (csi.Node as grpc.ServiceClientConstructor)(`unix:${csiSocket}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, unknown>;
});

afterAll(async () => {
  for (const targetPath of mounted) {
    await unary('NodeUnpublishVolume', { volume_id: 'cleanup', target_path: targetPath }).catch(() => undefined);
  }
  node?.close();
  if (driver && driver.exitCode === null) {
    const exited = once(driver, 'exit');
    driver.kill('SIGTERM');
    const force = setTimeout(() => driver.kill('SIGKILL'), 5_000); // its manager may wait on API watches
    await exited;
    clearTimeout(force);
  }
  await world?.close();
});

describe('the real Secrets Store CSI driver calling the injector', () => {
  it('writes the job\'s secret as a file with its mode into the pod\'s volume', async () => {
    const pod = await createPod('csi-worker');
    const targetPath = await publish(pod, 'csi-job');
    expect(readFileSync(join(targetPath, 'openai-key'), 'utf8')).toBe(apiKey);
    expect(statSync(join(targetPath, 'openai-key')).mode & 0o777).toBe(0o440);
  });

  it('rewrites the file with the new value when the kubelet republishes the volume after a change', async () => {
    const pod = await createPod('csi-rotating');
    const targetPath = await publish(pod, 'csi-job');
    const rotated = secretValue('csi-rotated');
    await world.put('openai/api-key', rotated);
    // The kubelet republishes periodically; the driver only acts once its poll interval has passed since the last
    // write, so republish as the kubelet would until the file changes.
    const end = Date.now() + 10_000;
    while (readFileSync(join(targetPath, 'openai-key'), 'utf8') !== rotated && Date.now() < end) {
      await publish(pod, 'csi-job');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(readFileSync(join(targetPath, 'openai-key'), 'utf8')).toBe(rotated);
    expect(driverLog).not.toContain(rotated);
  });

  it('fails the volume, with the injector\'s ParameterOverride code, when the pod\'s attributes name another job', async () => {
    const pod = await createPod('csi-thief');
    await expect(publish(pod, 'csi-job', { owner: world.owner.address, job: 'victim-job', objects: '- key: victim-key' })).rejects.toThrow(/ParameterOverride/);
    expect(world.injectorLogs.some((line) => line.includes('"code":"ParameterOverride"') && line.includes('csi-thief'))).toBe(true);
    expect(driverLog).not.toContain(victim);
  });
});
