// What `helm lint` and `helm template` make of the chart: the objects, their security settings, the values it refuses.
import { lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { SUPPORTED_SCHEMES } from '../../server/storage/open.js';
import { ALL_FEATURES, CHART_DIR, NAMESPACE, REPO_DIR, find, helm, render, valuesFile, type KubeObject } from './helm.js';

interface Container {
  name: string;
  image?: string;
  imagePullPolicy?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Record<string, unknown>;
  volumes?: { name: string; hostPath?: { path: string }; persistentVolumeClaim?: unknown; emptyDir?: unknown }[];
  tolerations?: unknown[];
  nodeSelector?: Record<string, string>;
  affinity?: unknown;
  imagePullSecrets?: unknown[];
  automountServiceAccountToken?: boolean;
}

function podSpec(object: KubeObject): PodSpec {
  return ((object.spec as { template: { spec: PodSpec } }).template.spec);
}

function workloads(objects: KubeObject[]): KubeObject[] {
  return objects.filter((o) => ['Deployment', 'DaemonSet', 'StatefulSet', 'Job', 'CronJob'].includes(o.kind));
}

function envOf(container: Container, name: string): { value?: string; valueFrom?: unknown } | undefined {
  return container.env?.find((e) => e.name === name);
}

describe('the chart', () => {
  it('passes helm lint with the default values and with every optional feature on', async () => {
    const plain = await helm(['lint', CHART_DIR, '--strict']);
    expect(plain.stdout + plain.stderr, 'helm lint (defaults)').toContain('0 chart(s) failed');
    const all = await helm(['lint', CHART_DIR, '--strict', '-f', valuesFile(ALL_FEATURES)]);
    expect(all.stdout + all.stderr, 'helm lint (all features)').toContain('0 chart(s) failed');
  });

  it('installs the server, the operator with its RBAC, and the injector DaemonSet with default values', async () => {
    const objects = await render();
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/nsx-nosana-secrets-injector',
      'ClusterRole/nsx-nosana-secrets-operator',
      'ClusterRole/nsx-nosana-secrets-operator-secrets',
      'ClusterRoleBinding/nsx-nosana-secrets-injector',
      'ClusterRoleBinding/nsx-nosana-secrets-operator',
      'DaemonSet/nsx-nosana-secrets-injector',
      'Deployment/nsx-nosana-secrets-operator',
      'Deployment/nsx-nosana-secrets-server',
      'Job/nsx-nosana-secrets-create-keys',
      'NetworkPolicy/nsx-nosana-secrets-server',
      'PersistentVolumeClaim/nsx-nosana-secrets-data',
      'PodDisruptionBudget/nsx-nosana-secrets-operator',
      'PodDisruptionBudget/nsx-nosana-secrets-server',
      'Role/nsx-nosana-secrets-create-keys',
      'Role/nsx-nosana-secrets-operator-leader-election',
      'RoleBinding/nsx-nosana-secrets-create-keys',
      'RoleBinding/nsx-nosana-secrets-operator-leader-election',
      'Secret/nsx-nosana-secrets-storage',
      'Service/nsx-nosana-secrets-injector-metrics',
      'Service/nsx-nosana-secrets-operator-metrics',
      'Service/nsx-nosana-secrets-server',
      'ServiceAccount/nsx-nosana-secrets-create-keys',
      'ServiceAccount/nsx-nosana-secrets-injector',
      'ServiceAccount/nsx-nosana-secrets-operator',
      'ServiceAccount/nsx-nosana-secrets-server',
    ]);
    for (const object of objects) {
      if (!object.kind.startsWith('Cluster')) expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe(NAMESPACE);
    }

    const server = podSpec(find(objects, 'Deployment', '-server')).containers[0]!;
    expect(server.args).toEqual(['server']);
    expect(envOf(server, 'PORT')?.value).toBe('4124');
    // Two workers of at most 64 connections each: what the 384Mi memory limit was sized for.
    expect(envOf(server, 'SERVER_WORKERS')?.value).toBe('2');
    expect(envOf(server, 'MAX_CONNECTIONS')?.value).toBe('64');
    expect(server.resources).toMatchObject({ limits: { memory: '384Mi' } });
    expect(envOf(server, 'STORAGE_CONNECTION')?.valueFrom).toEqual({ secretKeyRef: { name: 'nsx-nosana-secrets-storage', key: 'STORAGE_CONNECTION' } });
    const service = find(objects, 'Service', '-server');
    expect((service.spec as { ports: { port: number }[] }).ports[0]!.port).toBe(4124);

    const operator = podSpec(find(objects, 'Deployment', '-operator')).containers[0]!;
    expect(operator.args).toEqual(['operator']);
    expect(envOf(operator, 'POD_NAME')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(envOf(operator, 'POD_NAMESPACE')?.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    // The V8 limits under which bench/operator measured RSS under 150 MB at 1,000 bindings.
    expect(envOf(operator, 'NODE_OPTIONS')?.value).toBe('--max-old-space-size=96 --max-semi-space-size=4');

    const injectorPod = podSpec(find(objects, 'DaemonSet', '-injector'));
    expect(injectorPod.containers[0]!.args).toEqual(['injector', '--socket-dir', '/provider']);
    expect(envOf(injectorPod.containers[0]!, 'NOSANA_INJECTOR_ENDPOINTS')?.value, 'the injector signs in to this release\'s server only')
      .toBe('http://nsx-nosana-secrets-server.nosana-system.svc:4124');
    expect(envOf(injectorPod.containers[0]!, 'NOSANA_NODE_KEYPAIR')).toBeUndefined();
    expect(injectorPod.volumes?.find((v) => v.name === 'providers')?.hostPath?.path).toBe('/var/run/secrets-store-csi-providers');
    expect(injectorPod.tolerations, 'the injector runs on tainted nodes too').toContainEqual({ operator: 'Exists' });
  });

  it('renders ServiceMonitors, alert rules, the dashboard and existing Secrets when every optional feature is on', async () => {
    const objects = await render(ALL_FEATURES);
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['nsx-nosana-secrets-injector', 'nsx-nosana-secrets-operator', 'nsx-nosana-secrets-server']);
    for (const monitor of monitors) expect(monitor.metadata.labels?.release).toBe('kube-prometheus-stack');

    const rules = find(objects, 'PrometheusRule');
    const alerts = (rules.spec as { groups: { rules: { alert: string; labels: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules);
    expect(alerts.map((a) => a.alert)).toEqual(expect.arrayContaining([
      'NosanaSecretsServerDown', 'NosanaSecretsFailedLoginSpike', 'NosanaSecretsMountsFailing', 'NosanaSecretsBindingNotReady',
      'NosanaSecretsOperatorDown', 'NosanaSecretsInjectorDown',
    ]));
    for (const alert of alerts) expect(alert.labels.team, alert.alert).toBe('platform');

    const dashboard = find(objects, 'ConfigMap', '-dashboard');
    expect(dashboard.metadata.namespace).toBe('monitoring');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    expect(dashboard.metadata.annotations?.grafana_folder).toBe('Nosana');
    const json = (dashboard.data as Record<string, string>)['nosana-secrets.json']!;
    expect(JSON.parse(json)).toEqual(JSON.parse(readFileSync(join(CHART_DIR, 'dashboards/nosana-secrets.json'), 'utf8')));

    // Existing Secrets are used, none is generated.
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(objects.filter((o) => o.kind === 'PersistentVolumeClaim'), 'no sqlite volume with an external database').toEqual([]);
    const serverPod = podSpec(find(objects, 'Deployment', '-server'));
    expect(envOf(serverPod.containers[0]!, 'STORAGE_CONNECTION')?.valueFrom).toEqual({ secretKeyRef: { name: 'nosana-db', key: 'url' } });
    expect(serverPod.volumes?.find((v) => v.name === 'keys')).toMatchObject({ secret: { secretName: 'nosana-keys' } });

    // Overrides users expect reach every workload.
    for (const workload of workloads(objects)) {
      const pod = podSpec(workload);
      const where = `${workload.kind}/${workload.metadata.name}`;
      expect(workload.metadata.labels?.team, where).toBe('platform');
      expect(workload.metadata.annotations?.['example.com/owner'], where).toBe('platform');
      expect(pod.imagePullSecrets, where).toEqual([{ name: 'regcred' }]);
      for (const container of pod.containers) {
        expect(container.image, where).toBe('registry.example.com/nosana-secrets:9.9.9');
        expect(container.imagePullPolicy, where).toBe('Always');
      }
    }
    expect(serverPod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(serverPod.tolerations).toHaveLength(1);
    expect(serverPod.affinity).toHaveProperty('podAntiAffinity');
    const injectorPod = podSpec(find(objects, 'DaemonSet', '-injector'));
    expect(injectorPod.volumes?.find((v) => v.name === 'providers')?.hostPath?.path).toBe('/etc/kubernetes/secrets-store-csi-providers');
    expect(envOf(injectorPod.containers[0]!, 'NOSANA_INJECTOR_ENDPOINTS')?.value)
      .toBe('http://nsx-nosana-secrets-server.nosana-system.svc:4124,https://secrets.example.com');
    expect(envOf(injectorPod.containers[0]!, 'NOSANA_NODE_KEYPAIR')?.value).toBe('/etc/nosana-secrets/node/keypair.json');
    expect(injectorPod.volumes?.find((v) => v.name === 'node-keypair')).toMatchObject({ secret: { secretName: 'node-key', items: [{ key: 'keypair.json', path: 'keypair.json' }] } });
    expect(envOf(podSpec(find(objects, 'Deployment', '-operator')).containers[0]!, 'NOSANA_SECRETS_ENDPOINT')?.value).toBe('https://secrets.example.com');
  });

  it('tags the image with the chart appVersion unless told otherwise, and pulls by digest when given one', async () => {
    const chart = parseAllDocuments(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8'))[0]!.toJS() as { appVersion: string };
    const plain = podSpec(find(await render(), 'Deployment', '-server')).containers[0]!;
    expect(plain.image).toBe(`ghcr.io/nosana-ci/nosana-secrets:${chart.appVersion}`);
    const digest = `sha256:${'a'.repeat(64)}`;
    const pinned = podSpec(find(await render({ image: { digest } }), 'Deployment', '-server')).containers[0]!;
    expect(pinned.image).toBe(`ghcr.io/nosana-ci/nosana-secrets@${digest}`);
  });

  it('runs every container without privileges: no escalation, read-only root, no capabilities, seccomp, resources', async () => {
    for (const values of [{}, ALL_FEATURES]) {
      for (const workload of workloads(await render(values))) {
        const pod = podSpec(workload);
        for (const container of [...(pod.initContainers ?? []), ...pod.containers]) {
          const where = `${workload.kind}/${workload.metadata.name} container ${container.name}`;
          const context = { ...pod.securityContext, ...container.securityContext } as Record<string, unknown>;
          expect(context.allowPrivilegeEscalation, where).toBe(false);
          expect(context.readOnlyRootFilesystem, where).toBe(true);
          expect(context.privileged ?? false, where).toBe(false);
          expect(context.capabilities, where).toEqual({ drop: ['ALL'] });
          expect(context.seccompProfile, where).toEqual({ type: 'RuntimeDefault' });
          expect(container.resources, where).toHaveProperty('requests');
          expect(container.resources, where).toHaveProperty('limits.memory');
        }
      }
    }
  });

  it('runs the server and the operator as a non-root user, and the injector as root only to own its socket', async () => {
    for (const workload of workloads(await render())) {
      const pod = podSpec(workload);
      for (const container of pod.containers) {
        const where = `${workload.kind}/${workload.metadata.name}`;
        const context = { ...pod.securityContext, ...container.securityContext } as Record<string, unknown>;
        if (workload.kind === 'DaemonSet') {
          // The driver's shared provider directory on the host is root's; a provider must run as uid 0 to create its
          // socket there (the Secrets Store CSI driver documents this). It gets no capability to do anything else.
          expect(context.runAsUser, where).toBe(0);
          expect(context.capabilities, where).toEqual({ drop: ['ALL'] });
        } else {
          expect(context.runAsNonRoot, where).toBe(true);
          expect(context.runAsUser, where).toBeGreaterThan(0);
        }
      }
    }
  });

  it('renders no key: a hook Job that may only create Secrets makes the keys Secret in the cluster, once', async () => {
    const objects = await render();
    expect(objects.filter((o) => o.kind === 'Secret' && o.metadata.name.endsWith('-keys'))).toEqual([]);
    const hooks = objects.filter((o) => o.metadata.name === 'nsx-nosana-secrets-create-keys');
    expect(hooks.map((o) => o.kind).sort()).toEqual(['Job', 'Role', 'RoleBinding', 'ServiceAccount']);
    for (const hook of hooks) {
      expect(hook.metadata.annotations?.['helm.sh/hook'], hook.kind).toBe('pre-install,pre-upgrade');
      expect(hook.metadata.annotations?.['helm.sh/hook-delete-policy'], hook.kind).toBe('before-hook-creation,hook-succeeded');
    }
    expect(find(objects, 'Role', '-create-keys').rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
    const job = podSpec(find(objects, 'Job', '-create-keys')).containers[0]!;
    expect(job.args).toEqual(['create-keys-secret', '--name', 'nsx-nosana-secrets-keys']);
    expect(podSpec(find(objects, 'Deployment', '-server')).volumes?.find((v) => v.name === 'keys')).toMatchObject({ secret: { secretName: 'nsx-nosana-secrets-keys' } });
    // A Secret of your own: no Job, no rights to create Secrets.
    expect((await render({ server: { keys: { existingSecret: 'mine' } } })).filter((o) => o.metadata.name.endsWith('-create-keys'))).toEqual([]);
  });

  it('accepts exactly the storage schemes the server supports', async () => {
    for (const scheme of SUPPORTED_SCHEMES) {
      const objects = await render({ server: { storage: { connection: `${scheme}://user:pw@db.example.com/nosana` } } });
      const secret = find(objects, 'Secret', '-storage').data as Record<string, string>;
      expect(Buffer.from(secret.STORAGE_CONNECTION!, 'base64').toString()).toBe(`${scheme}://user:pw@db.example.com/nosana`);
    }
    await expect(render({ server: { storage: { connection: 'ftp://db.example.com/x' } } })).rejects.toThrow(/connection/);
  });

  it('rejects wrong values with the path of the wrong value', async () => {
    const wrong: [object, RegExp][] = [
      [{ server: { replicaCount: 'two' } }, /replicaCount/],
      [{ server: { replicaCount: -1 } }, /replicaCount/],
      [{ server: { port: 70000 } }, /port/],
      [{ operator: { metricsPort: '8096' } }, /metricsPort/],
      [{ image: { pullPolicy: 'Sometimes' } }, /pullPolicy/],
      [{ image: { digest: 'latest' } }, /digest/],
      [{ injector: { providersDir: 'relative/dir' } }, /providersDir/],
      [{ metrics: { serviceMonitor: { enabled: 'yes' } } }, /enabled/],
      [{ server: { grantSources: 'chain' } }, /grantSources/],
      [{ server: { logLevel: 'loud' } }, /logLevel/],
      [{ sever: { replicaCount: 1 } }, /sever/],
      [{ grafanaDashboard: { labelValue: 1 } }, /labelValue/],
    ];
    for (const [values, message] of wrong) {
      await expect(render(values), JSON.stringify(values)).rejects.toThrow(message);
    }
  });

  it('refuses several server replicas on one sqlite file', async () => {
    await expect(render({ server: { replicaCount: 2 } })).rejects.toThrow(/shared database/);
    await expect(render({ server: { replicaCount: 2, storage: { connection: 'postgresql://db/nosana' } } })).resolves.toBeTruthy();
  });

  it('grants the operator exactly the rules of operator/rbac.yaml: Secrets only in operator.namespaces, the Lease only in its own namespace', async () => {
    type Rule = { apiGroups: string[]; resources: string[]; verbs: string[] };
    const flatten = (rules: Rule[]) => rules.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res}:${v}`)))).sort();
    const [bindingRules, secretRules, leaseRules] = parseAllDocuments(readFileSync(join(REPO_DIR, 'operator/rbac.yaml'), 'utf8'))
      .map((document) => (document.toJS() as { rules: Rule[] }).rules);
    const objects = await render({ operator: { namespaces: ['jobs', 'more-jobs'] } });
    const clusterRole = find(objects, 'ClusterRole', '-operator').rules as Rule[];
    expect(flatten(clusterRole)).toEqual(flatten(bindingRules!));
    expect(flatten(clusterRole).some((r) => r.startsWith('/secrets')), 'no cluster-wide Secret rights').toBe(false);
    expect(flatten(find(objects, 'ClusterRole', '-operator-secrets').rules as Rule[])).toEqual(flatten(secretRules!));
    const secretBindings = objects.filter((o) => o.kind === 'RoleBinding' && o.metadata.name.endsWith('-operator-secrets'));
    expect(secretBindings.map((o) => o.metadata.namespace)).toEqual(['jobs', 'more-jobs']);
    expect(objects.filter((o) => o.kind === 'ClusterRoleBinding' && (o.roleRef as { name: string }).name.endsWith('-operator-secrets'))).toEqual([]);
    const leaseRole = find(objects, 'Role', '-leader-election');
    expect(leaseRole.metadata.namespace).toBe(NAMESPACE);
    expect(flatten(leaseRole.rules as Rule[])).toEqual(flatten(leaseRules!));
    expect(flatten(clusterRole).some((r) => r.startsWith('coordination.k8s.io/')), 'no cluster-wide Lease rights').toBe(false);

    const scoped = await render({ operator: { watchNamespace: 'jobs' } });
    const operatorClusterBindings = (list: KubeObject[]) => list.filter((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name.includes('-operator'));
    expect(operatorClusterBindings(objects)).toHaveLength(1);
    expect(operatorClusterBindings(scoped), 'an operator of one namespace has no cluster-wide rights').toEqual([]);
    expect(find(scoped, 'Role', '-operator').metadata.namespace).toBe('jobs');
    expect(flatten(find(scoped, 'Role', '-operator').rules as Rule[])).toEqual(flatten(clusterRole));
    expect(find(scoped, 'RoleBinding', '-operator-secrets').metadata.namespace).toBe('jobs');
    await expect(render({ operator: { namespaces: [NAMESPACE] } })).rejects.toThrow(/release namespace, which holds the server's keys/);
  });

  it('lets the server no Kubernetes API access, and the injector only read SecretProviderClasses', async () => {
    const objects = await render();
    expect(find(objects, 'ServiceAccount', '-server').automountServiceAccountToken).toBe(false);
    expect(podSpec(find(objects, 'Deployment', '-server')).automountServiceAccountToken).toBe(false);
    expect(objects.filter((o) => /Binding$/.test(o.kind)).map((o) => (o.subjects as { name: string }[])[0]!.name)).not.toContain('nsx-nosana-secrets-server');
    expect(find(objects, 'ClusterRole', '-injector').rules).toEqual([
      { apiGroups: ['secrets-store.csi.x-k8s.io'], resources: ['secretproviderclasses'], verbs: ['get'] },
    ]);
  });

  it('takes its CRDs from crds/ itself, so the chart cannot drift from them', async () => {
    const link = join(CHART_DIR, 'crds');
    expect(lstatSync(link).isSymbolicLink(), 'charts/nosana-secrets/crds is a symlink to ../../crds').toBe(true);
    expect(readlinkSync(link)).toBe('../../crds');
    const files = readdirSync(join(REPO_DIR, 'crds')).filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(files.length).toBeGreaterThan(0);
    const source = files.flatMap((f) => parseAllDocuments(readFileSync(join(REPO_DIR, 'crds', f), 'utf8')).map((d) => d.toJS() as KubeObject | null))
      .filter((o): o is KubeObject => o !== null);
    // helm installs every YAML file in crds/ as is: they must all be CRDs.
    for (const object of source) expect(object.kind, object.metadata.name).toBe('CustomResourceDefinition');
    // and helm follows the link: what it would install is exactly crds/.
    const rendered = (await render({}, { includeCrds: true })).filter((o) => o.kind === 'CustomResourceDefinition');
    expect(rendered).toEqual(source);
    expect(rendered.map((c) => c.metadata.name)).toContain('nosanasecretbindings.secrets.nosana.io');
  });
});
