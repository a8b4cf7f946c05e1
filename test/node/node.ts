// The test node of test/env (test/node.sh): its containerd, kubectl and the image `npm run image` builds.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../injector/provider.js';

// The checkout, also when this file runs compiled from dist/test/node (bench/pods imports it).
const root = PACKAGE_ROOT;

/** What the image is built from: a change to any of these makes the archive stale. */
const IMAGE_INPUTS = ['Dockerfile', 'image', 'package.json', 'package-lock.json', 'tsconfig.json', 'cli', 'common', 'server', 'operator', 'injector', 'proto', 'bench'];

function newestChange(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestChange(join(path, name))));
}

/** The image archive: NS_TEST_IMAGE, or the one `npm run image` wrote (built now when missing or older than its sources). */
export function imageArchive(): string {
  if (process.env.NS_TEST_IMAGE) return process.env.NS_TEST_IMAGE;
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const archive = join(root, '.image', `nosana-secrets-${version}.tar`);
  const stale = !existsSync(archive) || statSync(archive).mtimeMs < Math.max(...IMAGE_INPUTS.map((p) => newestChange(join(root, p))));
  if (stale) execFileSync('bash', [join(root, 'image/build.sh'), archive], { stdio: 'inherit' });
  return archive;
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

/** A variable test/run-node exports (through `test/env env`). */
export function nodeEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the node with test/run-node (see test/ENV.md)`);
  return value;
}

/** Runs the test helm with the test KUBECONFIG. */
export function helm(args: string[]): string {
  return execFileSync(nodeEnv('NS_TEST_HELM'), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * docs/kubernetes.md step 2 with the images built here: the Secrets Store CSI driver from its own chart (v1.6.0) and
 * charts/nosana-secrets/csi-driver-values.yaml (the module proxy serves no registrar; test/env builds the driver).
 * Returns once the kubelet knows the driver: mounts made before back off for minutes.
 */
export function installCsiDriver(): void {
  const [driverRepository, driverTag] = nodeEnv('NS_TEST_CSI_DRIVER_IMAGE').split(':');
  const [sidecarRepository, sidecarTag] = nodeEnv('NS_TEST_CSI_SIDECAR_IMAGE').split(':');
  helm(['upgrade', '--install', 'csi-secrets-store', nodeEnv('NS_TEST_CSI_CHART'), '--namespace', 'kube-system',
    '-f', join(root, 'charts/nosana-secrets/csi-driver-values.yaml'),
    '--set', `linux.image.repository=${driverRepository},linux.image.tag=${driverTag}`,
    '--set', `linux.registrarImage.repository=${sidecarRepository},linux.registrarImage.tag=${sidecarTag}`,
    '--set', `linux.livenessProbeImage.repository=${sidecarRepository},linux.livenessProbeImage.tag=${sidecarTag}`,
    '--set', `linux.kubeletRootDir=${nodeEnv('NS_TEST_NODE_STATE')}/kubelet`,
    // Its CRD hook job needs one more image; the chart's crds/ directory installs the same CRDs.
    '--set', 'linux.crds.enabled=false', '--wait', '--timeout', '3m']);
  for (let i = 0; ; i++) {
    if (kubectl(['get', 'csinode', 'localhost', '-o', 'jsonpath={.spec.drivers[*].name}']).includes('secrets-store')) return;
    if (i >= 120) throw new Error('the kubelet did not register the Secrets Store CSI driver within 2 minutes (CSINode localhost)');
    execFileSync('sleep', ['1']);
  }
}

/**
 * Uninstalls release nosana-secrets and its namespace, and frees the node's PersistentVolume (the data volume
 * outlives the release: helm keep) for the next install. Delete the namespaces of bindings first, while the operator
 * runs: its bindings carry the operator's finalizer, and would stay Terminating for good once the release is gone.
 */
export function uninstallChart(): void {
  spawnSync(nodeEnv('NS_TEST_HELM'), ['uninstall', 'nosana-secrets', '-n', 'nosana-secrets', '--wait', '--timeout', '2m']);
  kubectl(['delete', 'namespace', 'nosana-secrets', '--ignore-not-found', '--wait=true', '--timeout=120s']);
  spawnSync(nodeEnv('NS_TEST_KUBECTL'), ['patch', 'pv', 'nstest-pv-0', '--type', 'json', '-p', '[{"op":"remove","path":"/spec/claimRef"}]']);
  execFileSync('bash', ['-c', `rm -rf ${nodeEnv('NS_TEST_NODE_STATE')}/pv/pv-0/*`]);
}
