// What a production install sets on every part: disruption budgets, topology spread, scheduling, pod metadata,
// environment, priority and resources, each allowed by values.schema.json and reaching the rendered pods.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CHART_DIR, RELEASE, find, helm, render, valuesFile, type KubeObject } from './helm.js';

const PARTS = ['server', 'operator', 'injector'] as const;
const WORKLOAD: Record<(typeof PARTS)[number], [string, string]> = {
  server: ['Deployment', '-server'], operator: ['Deployment', '-operator'], injector: ['DaemonSet', '-injector'],
};

interface PodTemplate {
  metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    containers: { env?: { name: string; value?: string }[]; resources?: unknown }[];
    nodeSelector?: unknown; tolerations?: unknown; affinity?: unknown; priorityClassName?: string; topologySpreadConstraints?: unknown[];
  };
}
const template = (objects: KubeObject[], part: (typeof PARTS)[number]) =>
  (find(objects, ...WORKLOAD[part]).spec as { template: PodTemplate }).template;

/** The values people always set, different for each part so one cannot leak into another. */
function productionValues(part: string) {
  return {
    podLabels: { tier: `${part}-tier` },
    podAnnotations: { 'example.com/part': part },
    nodeSelector: { 'example.com/pool': `${part}-pool` },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: part, effect: 'NoSchedule' }],
    affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'example.com/arch', operator: 'In', values: [part] }] }] } } },
    priorityClassName: `${part}-priority`,
    extraEnv: [{ name: 'EXAMPLE_PART', value: part }],
    resources: { requests: { cpu: '123m', memory: '77Mi' }, limits: { memory: '333Mi' } },
  };
}

describe('the chart in production', () => {
  it('passes scheduling, pod metadata, env, priority and resources of each part to that part\'s pods only', async () => {
    const values = Object.fromEntries(PARTS.map((part) => [part, productionValues(part)]));
    const objects = await render(values);
    for (const part of PARTS) {
      const { metadata, spec } = template(objects, part);
      const want = productionValues(part);
      expect(metadata.labels, part).toMatchObject(want.podLabels);
      expect(metadata.annotations, part).toMatchObject(want.podAnnotations);
      expect(spec.nodeSelector, part).toMatchObject(want.nodeSelector);
      expect(spec.tolerations, part).toEqual(want.tolerations);
      expect(spec.affinity, part).toEqual(want.affinity);
      expect(spec.priorityClassName, part).toBe(want.priorityClassName);
      expect(spec.containers[0]!.env, part).toContainEqual(want.extraEnv[0]);
      expect(spec.containers[0]!.resources, part).toEqual(want.resources);
    }
  });

  it('spreads the server and operator replicas with topologySpreadConstraints that select their own pods', async () => {
    const spread = [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }];
    const objects = await render({ server: { topologySpreadConstraints: spread }, operator: { topologySpreadConstraints: spread } });
    for (const part of ['server', 'operator'] as const) {
      const { metadata, spec } = template(objects, part);
      expect(spec.topologySpreadConstraints, part).toEqual([{ ...spread[0], labelSelector: { matchLabels: {
        'app.kubernetes.io/name': 'nosana-secrets', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': part,
      } } }]);
      // the selector matches the part's own pods
      const selector = (spec.topologySpreadConstraints![0] as { labelSelector: { matchLabels: Record<string, string> } }).labelSelector.matchLabels;
      expect(metadata.labels).toMatchObject(selector);
    }
  });

  it('gives the server and the operator a PodDisruptionBudget that lets a single replica drain, minAvailable when set', async () => {
    const objects = await render({ server: { replicaCount: 3, storage: { connection: 'postgresql://u:p@db:5432/x' }, podDisruptionBudget: { minAvailable: 2 } } });
    const server = find(objects, 'PodDisruptionBudget', '-server').spec as Record<string, unknown>;
    const operator = find(objects, 'PodDisruptionBudget', '-operator').spec as Record<string, unknown>;
    expect(server).toMatchObject({ minAvailable: 2, unhealthyPodEvictionPolicy: 'AlwaysAllow' });
    expect(server).not.toHaveProperty('maxUnavailable');
    expect(operator).toMatchObject({ maxUnavailable: 1 });
    expect((operator.selector as { matchLabels: Record<string, string> }).matchLabels).toEqual(
      expect.objectContaining({ 'app.kubernetes.io/component': 'operator' }));
    const off = await render({ server: { podDisruptionBudget: { enabled: false } }, operator: { podDisruptionBudget: { enabled: false } } });
    expect(off.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });

  it('refuses a wrong budget or spread value with the path of the value', async () => {
    const lint = async (values: object) => {
      const result = await helm(['template', RELEASE, CHART_DIR, '-f', valuesFile(values)]);
      return result.code === 0 ? '' : result.stderr;
    };
    expect(await lint({ server: { podDisruptionBudget: { maxUnavailable: 'half' } } })).toMatch(/'\/server\/podDisruptionBudget\/maxUnavailable'.*\n.*'half' does not match pattern/);
    expect(await lint({ operator: { topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'zone', whenUnsatisfiable: 'Sometimes' }] } }))
      .toMatch(/'\/operator\/topologySpreadConstraints\/0\/whenUnsatisfiable': value must be one of/);
    // A DaemonSet has one pod per node: a budget there would only block drains.
    expect(await lint({ injector: { podDisruptionBudget: { enabled: true } } })).toMatch(/'\/injector': additional properties 'podDisruptionBudget' not allowed/);
  });

  it('says in NOTES.txt what csi-driver-values.yaml does: rotation on, no token requests', async () => {
    const pairing = parse(readFileSync(join(CHART_DIR, 'csi-driver-values.yaml'), 'utf8')) as Record<string, unknown>;
    expect(pairing.enableSecretRotation).toBe(true);
    expect(pairing).not.toHaveProperty('tokenRequests');
    const installed = await helm(['install', RELEASE, CHART_DIR, '--dry-run=client', '--namespace', 'nosana-system']);
    expect(installed.code, installed.stderr).toBe(0);
    const notes = installed.stdout.slice(installed.stdout.indexOf('NOTES:'));
    expect(notes).toContain('csi-driver-values.yaml (rotation on; no token requests');
    expect(notes).not.toMatch(/token requests on/);
  });
});
