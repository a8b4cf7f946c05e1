// A second kube-apiserver on the shared etcd, for the restart test: restarting it disrupts only the operator that
// talks to it, never the other test files running against the shared one (two API servers on one etcd is how an HA
// control plane runs). It is started with exactly the flags test/env gave the shared server, read from that
// process, with its own port and certificate directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { waitFor } from './cluster.js';

export interface PrivateApiServer {
  url: string;
  kubeConfig(): KubeConfig;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

/**
 * With `ownStorage`, the server keeps its objects under an etcd prefix of its own: a cluster apart (its own CRDs too),
 * for tests that need this worktree's CRD while other test runs apply theirs to the shared server.
 */
export async function startPrivateApiServer(options: { ownStorage?: boolean } = {}): Promise<PrivateApiServer> {
  const state = process.env.NS_TEST_STATE ?? '/tmp/nosana-secrets-test';
  const kubeconfigPath = process.env.KUBECONFIG;
  if (!kubeconfigPath) throw new Error('KUBECONFIG is not set: run `bash test/env up kube` first');
  const pid = readFileSync(join(state, 'run', 'kube-apiserver.pid'), 'utf8').trim();
  const [binary, ...sharedArgs] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  if (!binary || !binary.includes('kube-apiserver')) throw new Error(`pid ${pid} in ${state}/run is not the kube-apiserver test/env started`);
  const port = await freePort();
  const args = [
    ...sharedArgs.filter((arg) => !arg.startsWith('--secure-port=') && !arg.startsWith('--cert-dir=')),
    `--secure-port=${port}`, `--cert-dir=${mkdtempSync(join(tmpdir(), 'nss-apiserver-'))}`,
    ...(options.ownStorage ? [`--etcd-prefix=/nss-private-${port}-${process.pid}`] : []),
  ];
  const url = `https://127.0.0.1:${port}`;
  const sharedUrl = new KubeConfig();
  sharedUrl.loadFromFile(kubeconfigPath);
  const kubeconfigText = readFileSync(kubeconfigPath, 'utf8').replaceAll(sharedUrl.getCurrentCluster()!.server, url);
  const kubeConfig = () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigText);
    kc.makePathsAbsolute(join(kubeconfigPath, '..'));
    return kc;
  };

  let child: ChildProcess | undefined;
  let log = '';
  const start = async () => {
    log = '';
    child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000); });
    const started = child;
    await waitFor(`the private kube-apiserver on ${url} to be ready`, async () => {
      if (started.exitCode !== null) throw new Error(`kube-apiserver exited with ${started.exitCode}: ${log}`);
      const response = await kubeConfig().makeApiClient((await import('@kubernetes/client-node')).CoreV1Api)
        .readNamespace({ name: 'default' }).then(() => true, () => false);
      return response;
    }, 120_000);
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    url, kubeConfig, stop,
    async restart() {
      await stop();
      await start();
    },
  };
}
