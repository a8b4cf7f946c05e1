// docs/kubernetes.md, steps 3 to 6, executed as written on the test node: the Secrets Store CSI driver from its own
// chart (images built here), `helm install` of this chart with its defaults (the image `npm run image` built), a
// secret stored and granted through a port-forward, a binding, a class, and the job pod, whose log must show the
// secret arrived as a file and as an env var. The only shims: `kubectl`/`helm` are the test's binaries, `npx
// nosana-secrets` runs this checkout's CLI (what `npm install` would put there).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctr, env, imageArchive, installCsiDriver, kubectl, removeRelease } from './node.js';

const root = join(import.meta.dirname, '../..');
const doc = readFileSync(join(root, 'docs/kubernetes.md'), 'utf8');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** The ```sh blocks of one numbered section ("## 3. ...") of the guide. */
function shellBlocks(step: number): string[] {
  const start = doc.indexOf(`\n## ${step}. `);
  const end = doc.indexOf('\n## ', start + 1);
  if (start < 0) throw new Error(`docs/kubernetes.md has no step ${step}`);
  return [...doc.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

let work: string;
let bin: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'walkthrough-'));
  bin = join(work, 'bin');
  mkdirSync(bin);
  // The guide runs in a checkout (charts/...) and writes its key files there: a scratch dir with the charts.
  symlinkSync(join(root, 'charts'), join(work, 'charts'));
  const shim = (name: string, body: string): void => {
    writeFileSync(join(bin, name), `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  shim('kubectl', `exec ${env('NS_TEST_KUBECTL')} "$@"`);
  shim('helm', `exec ${env('NS_TEST_HELM')} "$@"`);
  shim('npx', `[[ $1 == nosana-secrets ]] || exit 99\nshift\nexec node ${join(root, 'dist/cli/main.js')} "$@"`);
  ctr(['images', 'import', imageArchive()]);
  installCsiDriver();
}, 600_000);

afterAll(() => {
  // The job's namespace first (test/node/lifecycle.test.ts checks the other order, uninstall first).
  removeRelease();
  rmSync(work, { recursive: true, force: true });
}, 300_000);

/** Runs the script without blocking the test worker (minutes of spawnSync starve vitest's RPC). */
function runScript(script: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], { cwd: work, env: { ...process.env, KUBECONFIG: env('KUBECONFIG') }, timeout: 900_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('the walk-through of docs/kubernetes.md on a node that runs pods', () => {
  it('installs the chart, stores and grants a secret, and the job pod reads it from its file and its env var', async () => {
    const [install] = shellBlocks(3);
    const [portForward, store, nodeKey] = shellBlocks(4);
    const [binding, providerClass] = shellBlocks(5);
    const [job] = shellBlocks(6);
    const script = [
      'set -euo pipefail',
      `export PATH=${bin}:$PATH IMAGE_REPOSITORY=ghcr.io/nosana-ci/nosana-secrets IMAGE_TAG=${version}`,
      install,
      // Step 4 says: keep the port-forward running in another terminal.
      `(${portForward?.trim()}) >port-forward.log 2>&1 & trap "kill $! 2>/dev/null" EXIT`,
      'for i in $(seq 60); do curl -sf http://localhost:4124/healthz >/dev/null && break; sleep 1; done',
      store,
      nodeKey,
      binding,
      'kubectl -n jobs wait nsb/${JOB} --for=condition=Ready --timeout=2m',
      providerClass,
      job,
    ].join('\n');
    const run = await runScript(script);
    const jobLog = spawnSync(env('NS_TEST_KUBECTL'), ['-n', 'jobs', 'logs', 'demo-job-1-worker'], { encoding: 'utf8' });
    const output = `${run.stdout}\n${run.stderr}\n--- job pod log ---\n${jobLog.stdout}${jobLog.stderr}`;
    expect(run.status, output).toBe(0);
    // The guide's own promise: "25 /mnt/secrets/openai-key, then 26 (the value and a newline)".
    expect(jobLog.stdout.trim().split('\n')).toEqual(['25 /mnt/secrets/openai-key', '26']);
    // Every part came up once and stayed up (the server on Node 24 crash-looped here before it settled).
    const restarts = spawnSync(env('NS_TEST_KUBECTL'), ['-n', 'nosana-secrets', 'get', 'pods', '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount}{"\\n"}{end}'], { encoding: 'utf8' });
    const counts = restarts.stdout.trim().split('\n');
    expect(counts.length, restarts.stderr).toBeGreaterThanOrEqual(3);
    for (const line of counts) expect(line, 'pod=restarts').toMatch(/=0$/);
  }, 1_200_000);
});
