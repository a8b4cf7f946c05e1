// The test node of test/env (test/node.sh): its containerd, kubectl, helm, the image `npm run image` builds, the
// Secrets Store CSI driver, and the release the tests install and remove.
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../injector/provider.js';

// The checkout, also when this file runs compiled from dist/test/node (bench/pods imports it).
const root = PACKAGE_ROOT;

/** What goes into the image: a change to any of these makes the archive stale. */
const IMAGE_INPUTS = ['server', 'operator', 'injector', 'common', 'cli', 'proto', 'package.json', 'package-lock.json', 'tsconfig.json', 'Dockerfile', 'image'];

function newestChange(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((newest, name) => Math.max(newest, newestChange(join(path, name))), stat.mtimeMs);
}

/**
 * The image archive: NS_TEST_IMAGE, or the one `npm run image` wrote, built now when missing or older than the code
 * (else the node would run yesterday's operator; the build caches its inputs, so an up-to-date one costs nothing).
 */
export function imageArchive(): string {
  if (process.env.NS_TEST_IMAGE) return process.env.NS_TEST_IMAGE;
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const archive = join(root, '.image', `nosana-secrets-${version}.tar`);
  const stale = !existsSync(archive)
    || IMAGE_INPUTS.some((input) => existsSync(join(root, input)) && newestChange(join(root, input)) > statSync(archive).mtimeMs);
  if (stale) execFileSync('bash', [join(root, 'image/build.sh'), archive], { stdio: 'inherit' });
  return archive;
}

/** A variable test/run-node exports; fails with the fix when it is missing. */
export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the node's tests with test/run-node (see test/ENV.md)`);
  return value;
}

/** Runs the test's helm (the version test/env pins). */
export function helm(args: string[]): string {
  return execFileSync(env('NS_TEST_HELM'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `ctr` against the node's containerd, in the namespace the kubelet uses. */
export function ctr(args: string[], ignoreFailure = false): string {
  const address = process.env.NS_TEST_NODE_CONTAINERD;
  if (!address) throw new Error('NS_TEST_NODE_CONTAINERD is not set: start the node with test/run-node (see test/ENV.md)');
  try {
    return execFileSync('ctr', ['--address', address, '-n', 'k8s.io', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    if (ignoreFailure) return '';
    throw error;
  }
}

/** Runs the node's kubectl (same version as the apiserver) with the test KUBECONFIG. */
export function kubectl(args: string[], input?: string): string {
  const bin = process.env.NS_TEST_KUBECTL;
  if (!bin) throw new Error('NS_TEST_KUBECTL is not set: start the node with test/run-node (see test/ENV.md)');
  return execFileSync(bin, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** kubectl without blocking the test worker (long waits with execFileSync starve vitest's RPC); rejects on failure. */
export function kubectlAsync(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(env('NS_TEST_KUBECTL'), args, { encoding: 'utf8', maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || error.message}`));
      else resolve(stdout);
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** Polls `check` until it returns a value (not undefined/false), or fails after `timeoutMs` naming what it waited for. */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * docs/kubernetes.md step 2 with the images built here (the module proxy serves no registrar; test/env builds the
 * driver), plus `sets` of the test's own. Returns once the kubelet lists the driver (else mounts back off for minutes).
 */
export function installCsiDriver(sets: string[] = []): void {
  const [driver, driverTag] = env('NS_TEST_CSI_DRIVER_IMAGE').split(':');
  const [sidecar, sidecarTag] = env('NS_TEST_CSI_SIDECAR_IMAGE').split(':');
  const registered = (): boolean => kubectl(['get', 'csinode', 'localhost', '-o', 'jsonpath={.spec.drivers[*].name}']).includes('secrets-store');
  helm(['upgrade', '--install', 'csi-secrets-store', env('NS_TEST_CSI_CHART'), '--namespace', 'kube-system',
    '-f', join(root, 'charts/nosana-secrets/csi-driver-values.yaml'),
    '--set', `linux.image.repository=${driver},linux.image.tag=${driverTag}`,
    '--set', `linux.registrarImage.repository=${sidecar},linux.registrarImage.tag=${sidecarTag}`,
    '--set', `linux.livenessProbeImage.repository=${sidecar},linux.livenessProbeImage.tag=${sidecarTag}`,
    '--set', `linux.kubeletRootDir=${env('NS_TEST_NODE_STATE')}/kubelet`,
    // Its CRD hook job needs one more image; the chart's crds/ directory installs the same CRDs.
    '--set', 'linux.crds.enabled=false',
    ...sets.flatMap((set) => ['--set', set]),
    '--wait', '--timeout', '3m']);
  kubectl(['-n', 'kube-system', 'rollout', 'status', 'ds/csi-secrets-store-secrets-store-csi-driver', '--timeout=3m']);
  for (let i = 0; i < 120 && !registered(); i++) execFileSync('sleep', ['1']);
  if (!registered()) throw new Error('the kubelet did not register the Secrets Store CSI driver within 2 minutes');
}

/**
 * Removes what docs/kubernetes.md step 3 installed: the jobs namespace, the release, its namespace (with the keys
 * Secret, which belongs to no release), and frees the node's PersistentVolume (helm keeps the claim's data) for the
 * next install. Safe to run when some or all of it is gone.
 */
export function removeRelease(): void {
  kubectl(['delete', 'namespace', 'jobs', '--ignore-not-found', '--wait=true', '--timeout=120s']);
  spawnSync(env('NS_TEST_HELM'), ['uninstall', 'nosana-secrets', '-n', 'nosana-secrets', '--wait', '--timeout', '2m']);
  kubectl(['delete', 'namespace', 'nosana-secrets', '--ignore-not-found', '--wait=true', '--timeout=120s']);
  spawnSync(env('NS_TEST_KUBECTL'), ['patch', 'pv', 'nstest-pv-0', '--type', 'json', '-p', '[{"op":"remove","path":"/spec/claimRef"}]']);
  execFileSync('bash', ['-c', `rm -rf ${env('NS_TEST_NODE_STATE')}/pv/pv-0/*`]);
}
