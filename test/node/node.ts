// The test node of test/env (test/node.sh): its containerd, kubectl and the image `npm run image` builds.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');

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
