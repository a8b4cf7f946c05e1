// Every test talks to real servers. `test/run` starts them (test/env) and exports where they are; when a variable
// is missing here, the suite fails at once with the fix, rather than skipping what it cannot reach.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { kubeConfig, purgeLeftoverNamespaces } from './kube.js';

/** Reads the variables `test/env` wrote, so `npx vitest` works too once `bash test/env up` has run. */
function loadTestEnv(): void {
  const state = process.env.NS_TEST_STATE ?? '/tmp/nosana-secrets-test';
  const file = `${state}/env.sh`;
  if (!existsSync(file)) return;
  const text = execFileSync('bash', ['-c', `set -a; . "${file}"; env -0`], { encoding: 'utf8' });
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0 && (entry.startsWith('NS_TEST_') || entry.startsWith('KUBECONFIG='))) {
      const name = entry.slice(0, eq);
      if (process.env[name] === undefined) process.env[name] = entry.slice(eq + 1);
    }
  }
}

export default async function setup(): Promise<void> {
  loadTestEnv();
  if (process.env.KUBECONFIG) {
    // Housekeeping, not a test: a failure here is reported and the run goes on.
    const purged = await purgeLeftoverNamespaces(kubeConfig()).catch((error: unknown) => {
      console.warn(`could not delete the namespaces of earlier runs: ${error instanceof Error ? error.message : String(error)}`);
      return 0;
    });
    if (purged > 0) console.info(`deleted ${purged} namespaces left by earlier test and bench runs`);
  }
}
