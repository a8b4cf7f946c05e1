// The CRD from crds/ refuses malformed bindings at the API server, with a message that names the problem, and fills
// in its defaults. No operator runs here: this is the schema alone.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { generateKeypair } from '../../common/login.js';
import { keyProblem } from '../../common/names.js';
import type { NosanaSecretBindingSpec } from '../../operator/api/v1alpha1.js';
import { messageOf, type KubeClients } from '../../operator/kube/clients.js';
import {
  applyCrd, bindingObject, clients, createBinding, createNamespace, CRD_FILE, deleteBinding, kubeConfig, patchBinding,
} from './cluster.js';

const owner = generateKeypair().address;
const valid: NosanaSecretBindingSpec = {
  job: 'job-1', owner, nodeCredentialsRef: { name: 'node-key' }, secrets: [{ key: 'api/token', env: 'API_TOKEN' }],
};

let kube: KubeClients;
let namespace: string;
let counter = 0;

beforeAll(async () => {
  const kc = kubeConfig();
  await applyCrd(kc);
  kube = clients(kc);
  namespace = await createNamespace(kube, 'nsb-crd');
});

afterAll(() => kube?.close());

/** Creates a binding and returns the API server's refusal message, or undefined when it was accepted. */
async function refusal(spec: unknown): Promise<string | undefined> {
  const name = `b${++counter}`;
  try {
    await createBinding(kube, bindingObject(namespace, name, spec as NosanaSecretBindingSpec));
  } catch (error) {
    return messageOf(error);
  }
  await deleteBinding(kube, namespace, name);
  return undefined;
}

describe('the NosanaSecretBinding CRD', () => {
  it('accepts a well-formed binding and fills in the defaults', async () => {
    const created = await createBinding(kube, bindingObject(namespace, 'defaults', valid));
    expect(created.spec.refreshInterval).toBe('15m');
    expect(created.spec.nodeCredentialsRef.key).toBe('keypair.json');
    expect(created.spec.jobFinished).toBe(false);
    await deleteBinding(kube, namespace, 'defaults');
  });

  it('refuses a binding without a job, naming the field', async () => {
    const { job: _job, ...spec } = valid;
    expect(await refusal(spec)).toMatch(/spec\.job: Required value/);
  });

  it('refuses a job id with characters outside the job name rule', async () => {
    expect(await refusal({ ...valid, job: 'job one' })).toMatch(/spec\.job: Invalid value.*should match/);
  });

  it('refuses an owner that is not a base58 address', async () => {
    expect(await refusal({ ...valid, owner: '0OIl-not-base58' })).toMatch(/spec\.owner: Invalid value/);
  });

  it('refuses a secrets entry without env, naming the field', async () => {
    expect(await refusal({ ...valid, secrets: [{ key: 'api/token' }] })).toMatch(/spec\.secrets\[0\]\.env: Required value/);
  });

  it('keeps no podSelector, path or mode: no code read them, so the API server drops them', async () => {
    const spec = {
      ...valid, podSelector: { matchLabels: { app: 'x' } }, secrets: [{ key: 'api/token', env: 'API_TOKEN', path: 'token', mode: 256 }],
    };
    const created = await createBinding(kube, bindingObject(namespace, 'pruned', spec as NosanaSecretBindingSpec));
    expect(created.spec).not.toHaveProperty('podSelector');
    expect(created.spec.secrets).toEqual([{ key: 'api/token', env: 'API_TOKEN' }]);
    await deleteBinding(kube, namespace, 'pruned');
  });

  it('refuses two entries that set the same env', async () => {
    const secrets = [{ key: 'a', env: 'TOKEN' }, { key: 'b', env: 'TOKEN' }];
    expect(await refusal({ ...valid, secrets })).toMatch(/env names must be unique/);
  });

  it('refuses an env name that is not a variable name', async () => {
    expect(await refusal({ ...valid, secrets: [{ key: 'a', env: '1-TOKEN' }] })).toMatch(/spec\.secrets\[0\]\.env: Invalid value/);
  });

  it('refuses a refresh interval that is not a duration or is under a second', async () => {
    expect(await refusal({ ...valid, refreshInterval: 'hourly' })).toMatch(/spec\.refreshInterval: Invalid value/);
    expect(await refusal({ ...valid, refreshInterval: '500ms' })).toMatch(/refreshInterval must be at least 1s/);
  });

  it('refuses an endpoint that is not an http URL', async () => {
    expect(await refusal({ ...valid, endpoint: 'ftp://example.com' })).toMatch(/endpoint must be an http:\/\/ or https:\/\/ URL/);
  });

  it('refuses more than 100 secrets entries', async () => {
    const secrets = Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, env: `K${i}` }));
    expect(await refusal({ ...valid, secrets })).toMatch(/spec\.secrets: Too many: 101: must have at most 100 items/);
  });

  it('refuses changing the job of a binding and setting jobFinished back to false', async () => {
    await createBinding(kube, bindingObject(namespace, 'immutable', { ...valid, jobFinished: true }));
    const change = (path: string, value: unknown) =>
      patchBinding(kube, namespace, 'immutable', [{ op: 'replace', path, value }]).then(() => undefined, messageOf);
    expect(await change('/spec/job', 'job-2')).toMatch(/job is immutable/);
    expect(await change('/spec/jobFinished', false)).toMatch(/jobFinished cannot be set back to false/);
    await deleteBinding(kube, namespace, 'immutable');
  });

  it('accepts exactly the secret keys the server accepts', () => {
    // The CRD's pattern is written for the API server's RE2 (no look-ahead); it must agree with common/names.ts.
    const crd = YAML.parse(readFileSync(CRD_FILE, 'utf8'));
    const pattern = new RegExp(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.secrets.items.properties.key.pattern);
    const samples = ['a', 'api/token', '.env', '..x', 'a/.b/c', '.', '..', 'a/./b', 'a/../b', '/a', 'a/', 'a//b', 'a b', 'job-1/result', '...'];
    for (const key of samples) expect(pattern.test(key), key).toBe(keyProblem(key) === undefined);
  });
});
