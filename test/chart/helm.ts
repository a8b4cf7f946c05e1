// Runs the real helm binary that test/env builds, and parses what it renders.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

export const CHART_DIR = resolve(import.meta.dirname, '../../charts/nosana-secrets');
export const REPO_DIR = resolve(import.meta.dirname, '../..');

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The helm binary; a missing one fails the test with the fix, never skips it. */
export function helmBinary(): string {
  const helm = process.env.NS_TEST_HELM;
  if (!helm) throw new Error('NS_TEST_HELM is not set: run `bash test/env up helm` (or `npm test`), which builds helm and exports it');
  return helm;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function helm(args: string[]): Promise<HelmResult> {
  try {
    const { stdout, stderr } = await run(helmBinary(), args, { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, HELM_CACHE_HOME: join(tmpdir(), 'ns-chart-helm-cache') } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw error;
    return { code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

/** Writes values to a file helm reads with -f (JSON is YAML). */
export function valuesFile(values: object): string {
  const dir = mkdtempSync(join(tmpdir(), 'ns-chart-values-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(file, JSON.stringify(values));
  return file;
}

export const RELEASE = 'nsx';
export const KUBE_VERSION = '1.34.0';
export const NAMESPACE = 'nosana-system';

/** `helm template` of this chart; throws with helm's message when it refuses. */
export async function render(values: object = {}, options: { namespace?: string; chart?: string; includeCrds?: boolean } = {}): Promise<KubeObject[]> {
  // A helm built from its Go module assumes Kubernetes 1.20 when no cluster is asked; say which one we target.
  const args = ['template', RELEASE, options.chart ?? CHART_DIR, '--namespace', options.namespace ?? NAMESPACE, '--kube-version', KUBE_VERSION, '-f', valuesFile(values)];
  if (options.includeCrds) args.push('--include-crds');
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
      return doc.toJS() as KubeObject | null;
    })
    .filter((object): object is KubeObject => object !== null);
}

export function find(objects: KubeObject[], kind: string, nameSuffix = ''): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (!found) throw new Error(`no ${kind} named *${nameSuffix} in: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

/** Every optional feature of the chart turned on at once. */
export const ALL_FEATURES = {
  commonLabels: { team: 'platform' },
  commonAnnotations: { 'example.com/owner': 'platform' },
  imagePullSecrets: [{ name: 'regcred' }],
  image: { repository: 'registry.example.com/nosana-secrets', tag: '9.9.9', pullPolicy: 'Always' },
  server: {
    replicaCount: 2,
    storage: { existingSecret: 'nosana-db', existingSecretKey: 'url' },
    keys: { existingSecret: 'nosana-keys' },
    service: { annotations: { 'example.com/lb': 'internal' } },
    podLabels: { tier: 'api' },
    podAnnotations: { 'example.com/scrape': 'yes' },
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'secrets', effect: 'NoSchedule' }],
    affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'server' } } } }] } },
    extraEnv: [{ name: 'TOKEN_TTL_SECONDS', value: '600' }],
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }],
    podDisruptionBudget: { minAvailable: 1 },
    serviceAccount: { annotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/nosana-secrets' } },
  },
  operator: { replicaCount: 2, defaultEndpoint: 'https://secrets.example.com' },
  injector: {
    providersDir: '/etc/kubernetes/secrets-store-csi-providers',
    extraAllowedEndpoints: ['https://secrets.example.com'],
    nodeKeypair: { existingSecret: 'node-key' },
  },
  metrics: { serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } } },
  prometheusRule: { enabled: true, labels: { release: 'kube-prometheus-stack' }, additionalLabels: { team: 'platform' } },
  grafanaDashboard: { enabled: true, namespace: 'monitoring', annotations: { grafana_folder: 'Nosana' } },
};
