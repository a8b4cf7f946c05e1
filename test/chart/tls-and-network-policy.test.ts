// What `helm template` makes of server.tls, server.metricsPort and networkPolicy: who serves HTTPS from which files,
// who trusts which CA, and who may connect to the server.
import { describe, expect, it } from 'vitest';
import { find, render, type KubeObject } from './helm.js';

interface Container {
  env?: { name: string; value?: string }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
  startupProbe?: { httpGet: { scheme?: string } };
  livenessProbe?: { httpGet: { scheme?: string } };
  readinessProbe?: { httpGet: { scheme?: string } };
}
interface Volume { name: string; secret?: { secretName: string; items?: { key: string; path: string }[] } }
interface PodSpec { containers: Container[]; volumes?: Volume[] }
interface PolicyPeer { podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: { matchLabels?: Record<string, string> }; ipBlock?: unknown }
interface PolicyRule { ports: { port: string | number }[]; from: PolicyPeer[] }

const pod = (object: KubeObject) => (object.spec as { template: { spec: PodSpec } }).template.spec;
const env = (container: Container, name: string) => container.env?.find((e) => e.name === name)?.value;
const SERVER_URL = 'https://nsx-nosana-secrets-server.nosana-system.svc:4124';
const TLS = { server: { tls: { enabled: true, existingSecret: 'server-tls' } } };

describe('the chart with TLS', () => {
  it('serves HTTPS from the Secret\'s tls.crt and tls.key, with HTTPS probes', async () => {
    const server = pod(find(await render(TLS), 'Deployment', '-server'));
    const container = server.containers[0]!;
    expect(env(container, 'TLS_CERT_FILE')).toBe('/etc/nosana-secrets/tls/tls.crt');
    expect(env(container, 'TLS_KEY_FILE')).toBe('/etc/nosana-secrets/tls/tls.key');
    expect(env(container, 'TLS_RELOAD_SECONDS')).toBe('30');
    expect(server.volumes?.find((v) => v.name === 'tls')?.secret).toMatchObject({
      secretName: 'server-tls', items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }],
    });
    expect(container.volumeMounts).toContainEqual(expect.objectContaining({ name: 'tls', mountPath: '/etc/nosana-secrets/tls' }));
    for (const probe of [container.startupProbe, container.livenessProbe, container.readinessProbe]) expect(probe?.httpGet.scheme).toBe('HTTPS');
  });

  it('points the operator and the injector at https and gives them ca.crt alone, never the server\'s key', async () => {
    const objects = await render(TLS);
    const operator = pod(find(objects, 'Deployment', '-operator'));
    const injector = pod(find(objects, 'DaemonSet', '-injector'));
    expect(env(operator.containers[0]!, 'NOSANA_SECRETS_ENDPOINT')).toBe(SERVER_URL);
    expect(env(injector.containers[0]!, 'NOSANA_INJECTOR_ENDPOINTS')).toBe(SERVER_URL);
    for (const client of [operator, injector]) {
      expect(env(client.containers[0]!, 'NOSANA_SECRETS_CA_FILE')).toBe('/etc/nosana-secrets/ca/ca.crt');
      const secret = client.volumes?.find((v) => v.name === 'server-ca')?.secret;
      expect(secret?.secretName).toBe('server-tls');
      expect(secret?.items).toEqual([{ key: 'ca.crt', path: 'ca.crt' }]);
      expect(client.containers[0]!.volumeMounts).toContainEqual({ name: 'server-ca', mountPath: '/etc/nosana-secrets/ca', readOnly: true });
    }
    // Without TLS nothing of this is there, and the endpoint stays http.
    const plain = await render();
    expect(env(pod(find(plain, 'Deployment', '-operator')).containers[0]!, 'NOSANA_SECRETS_CA_FILE')).toBeUndefined();
    expect(env(pod(find(plain, 'Deployment', '-server')).containers[0]!, 'TLS_CERT_FILE')).toBeUndefined();
  });

  it('asks cert-manager for a certificate naming the Service when told to, and refuses TLS without a certificate source', async () => {
    const objects = await render({ server: { tls: { enabled: true, certManager: { enabled: true, issuerRef: { name: 'cluster-ca', kind: 'ClusterIssuer' }, extraDnsNames: ['secrets.example.com'] } } } });
    const certificate = find(objects, 'Certificate', '-server-tls');
    expect(certificate.spec).toMatchObject({
      secretName: 'nsx-nosana-secrets-server-tls',
      issuerRef: { name: 'cluster-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
      dnsNames: expect.arrayContaining(['nsx-nosana-secrets-server.nosana-system.svc', 'secrets.example.com']),
    });
    expect(pod(find(objects, 'Deployment', '-server')).volumes?.find((v) => v.name === 'tls')?.secret?.secretName).toBe('nsx-nosana-secrets-server-tls');
    expect((await render(TLS)).filter((o) => o.kind === 'Certificate'), 'an existing Secret needs no Certificate').toEqual([]);
    await expect(render({ server: { tls: { enabled: true } } })).rejects.toThrow(/server\.tls\.existingSecret .* or server\.tls\.certManager\.enabled/);
    await expect(render({ server: { tls: { enabled: true, certManager: { enabled: true } } } })).rejects.toThrow(/issuerRef\.name/);
  });

  it('serves /metrics on server.metricsPort, which the Service names and the ServiceMonitor scrapes in plain HTTP', async () => {
    const objects = await render({ ...TLS, server: { ...TLS.server, metricsPort: 9090 }, metrics: { serviceMonitor: { enabled: true } } });
    const container = pod(find(objects, 'Deployment', '-server')).containers[0]!;
    expect(env(container, 'METRICS_PORT')).toBe('9090');
    expect(container.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 9090 }));
    expect((find(objects, 'Service', '-server').spec as { ports: { name: string; port: number }[] }).ports).toContainEqual(expect.objectContaining({ name: 'metrics', port: 9090 }));
    expect((find(objects, 'ServiceMonitor', '-server').spec as { endpoints: unknown[] }).endpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' },
    ]);
    // On the API port with TLS, Prometheus verifies the server by the same CA.
    const shared = await render({ ...TLS, metrics: { serviceMonitor: { enabled: true } } });
    expect((find(shared, 'ServiceMonitor', '-server').spec as { endpoints: unknown[] }).endpoints).toEqual([{
      port: 'http', scheme: 'https', path: '/metrics', interval: '30s', scrapeTimeout: '10s',
      tlsConfig: { serverName: 'nsx-nosana-secrets-server.nosana-system.svc', ca: { secret: { name: 'server-tls', key: 'ca.crt' } } },
    }]);
  });
});

describe('the chart\'s NetworkPolicy', () => {
  it('admits, by default, only this release\'s operator and injector to the API port, and Prometheus', async () => {
    const policies = (await render()).filter((o) => o.kind === 'NetworkPolicy');
    expect(policies.map((p) => p.metadata.name)).toEqual(['nsx-nosana-secrets-server']);
    const spec = policies[0]!.spec as { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: PolicyRule[] };
    expect(spec.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'nosana-secrets', 'app.kubernetes.io/instance': 'nsx', 'app.kubernetes.io/component': 'server' });
    expect(spec.policyTypes).toEqual(['Ingress']);
    const [api, prometheus] = spec.ingress;
    expect(api!.ports).toEqual([{ port: 'http', protocol: 'TCP' }]);
    expect(api!.from.map((peer) => peer.podSelector?.matchLabels?.['app.kubernetes.io/component'])).toEqual(['operator', 'injector']);
    for (const peer of api!.from) {
      expect(peer.namespaceSelector, 'same namespace only').toBeUndefined();
      expect(peer.podSelector?.matchLabels?.['app.kubernetes.io/instance']).toBe('nsx');
    }
    expect(prometheus).toEqual({
      ports: [{ port: 'http', protocol: 'TCP' }],
      from: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
    });
    expect(spec.ingress).toHaveLength(2);
  });

  it('admits the namespaces and peers it is given, Prometheus on the metrics port only, and can be turned off', async () => {
    const objects = await render({
      server: { metricsPort: 9090 },
      networkPolicy: { allowedNamespaces: ['ci', 'ingress-nginx'], extraFrom: [{ ipBlock: { cidr: '10.1.0.0/16' } }] },
    });
    const [api, prometheus] = (find(objects, 'NetworkPolicy', '-server').spec as { ingress: PolicyRule[] }).ingress;
    expect(api!.from.slice(2)).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ci' } } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
      { ipBlock: { cidr: '10.1.0.0/16' } },
    ]);
    expect(prometheus!.ports).toEqual([{ port: 'metrics', protocol: 'TCP' }]);
    const withoutInjector = await render({ injector: { enabled: false }, networkPolicy: { prometheus: { enabled: false } } });
    const rules = (find(withoutInjector, 'NetworkPolicy', '-server').spec as { ingress: PolicyRule[] }).ingress;
    expect(rules).toHaveLength(1);
    expect(rules[0]!.from.map((peer) => peer.podSelector?.matchLabels?.['app.kubernetes.io/component'])).toEqual(['operator']);
    expect((await render({ networkPolicy: { enabled: false } })).filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });
});
