// What the injector tests share: the real kube-apiserver (KUBECONFIG from `bash test/env up kube`) with the Secrets
// Store CSI driver's own SecretProviderClass CRD (NS_TEST_CSI_CRDS from `bash test/env up csi-driver`), a namespace
// per file, a real secrets server on SQLite with an owner, a node and grants, the injector running in-process on a
// unix socket in a temp dir, and a real @grpc/grpc-js client that sends Mount requests shaped as the driver's.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  ApiextensionsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import YAML from 'yaml';
import { generateKeypair, keypairFileContent, type Keypair } from '../../common/login.js';
import type { InjectorConfig } from '../../injector/config.js';
import { startInjector, type RunningInjector } from '../../injector/main.js';
import type { MountResponse, ObjectVersion } from '../../injector/mount.js';
import { PROTO_PATH } from '../../injector/provider.js';
import { SPC_GROUP, SPC_PLURAL, SPC_VERSION } from '../../injector/secret-provider-class.js';
import { newAccount, startTestServer, type Account, type TestServer } from '../helpers/server.js';
import { kubeConfig } from '../helpers/kube.js';
import { captureLogs } from '../helpers/logs.js';

export { kubeConfig };

const SPC_CRD_NAME = `${SPC_PLURAL}.${SPC_GROUP}`;

/** Applies the driver's SecretProviderClass CRD, as its chart does, and waits until the API server serves it. */
export async function applySecretProviderClassCrd(kc: KubeConfig): Promise<void> {
  const dir = process.env.NS_TEST_CSI_CRDS;
  if (!dir) throw new Error('NS_TEST_CSI_CRDS is not set: run `bash test/env up csi-driver` (or `npm test`), which exports the driver\'s CRD directory');
  const file = readdirSync(dir).find((name) => name.endsWith('_secretproviderclasses.yaml'));
  if (!file) throw new Error(`no *_secretproviderclasses.yaml in ${dir}`);
  const crd = YAML.parse(readFileSync(join(dir, file), 'utf8')) as V1CustomResourceDefinition;
  const api = kc.makeApiClient(ApiextensionsV1Api);
  try {
    await api.createCustomResourceDefinition({ body: crd });
  } catch (error) {
    if ((error as { code?: number }).code !== 409) throw error; // already there (another file, an earlier run)
  }
  const end = Date.now() + 20_000;
  for (;;) {
    const current = await api.readCustomResourceDefinition({ name: SPC_CRD_NAME });
    if (current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > end) throw new Error('the SecretProviderClass CRD was not established within 20 s');
    await new Promise((resolve) => setTimeout(resolve, 100)); // the API server offers no event for this; poll briefly
  }
}

export interface DriverClient {
  version(): Promise<{ version: string; runtime_name: string; runtime_version: string }>;
  mount(request: DriverMountRequest): Promise<MountResponse>;
  close(): void;
}

export interface DriverMountRequest {
  attributes: string;
  secrets: string;
  target_path: string;
  permission: string;
  current_object_version: ObjectVersion[];
}

/** A real gRPC client of the provider contract, dialled the way the driver dials: unix:<dir>/nosana.sock. */
export function driverClient(socketPath: string): DriverClient {
  const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const v1alpha1 = grpc.loadPackageDefinition(definition).v1alpha1 as grpc.GrpcObject;
  const Client = v1alpha1.CSIDriverProvider as grpc.ServiceClientConstructor;
  const client = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
  const unary = <T>(method: string, request: object) => new Promise<T>((resolve, reject) => {
    (client[method] as (req: object, cb: (error: grpc.ServiceError | null, response: T) => void) => void)
      .call(client, request, (error, response) => (error ? reject(error) : resolve(response)));
  });
  return {
    version: () => unary('Version', { version: 'v1.6.0' }),
    mount: (request) => unary('Mount', request),
    close: () => client.close(),
  };
}

export interface Pod {
  namespace: string;
  name: string;
  uid: string;
  serviceAccount: string;
}

export function newPod(namespace: string, name = `job-pod-${randomBytes(3).toString('hex')}`): Pod {
  return { namespace, name, uid: randomUUID(), serviceAccount: 'default' };
}

/**
 * The Mount request the driver (v1.6, nodeserver.go) sends: the class's parameters, overwritten by every volume
 * attribute the kubelet passed (the pod's volumeAttributes, then the kubelet's pod info), the nodePublishSecretRef
 * data as JSON, and the file permission 0644 marshalled as the decimal "420".
 */
export function driverRequest(options: {
  pod: Pod;
  secretProviderClass: string;
  classParameters: Record<string, string>;
  podAttributes?: Record<string, string>;
  nodePublishSecrets?: Record<string, string>;
  currentObjectVersions?: ObjectVersion[];
}): DriverMountRequest {
  const { pod } = options;
  const kubeletAttributes: Record<string, string> = {
    secretProviderClass: options.secretProviderClass,
    ...options.podAttributes,
    'csi.storage.k8s.io/pod.name': pod.name,
    'csi.storage.k8s.io/pod.namespace': pod.namespace,
    'csi.storage.k8s.io/pod.uid': pod.uid,
    'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount,
    'csi.storage.k8s.io/ephemeral': 'true',
    'csi.storage.k8s.io/serviceAccount.tokens': JSON.stringify({
      'nosana-secrets': { token: 'eyJhbGciOiJSUzI1NiJ9.sa-token-of-the-pod.sig', expirationTimestamp: new Date(Date.now() + 3_600_000).toISOString() },
    }),
  };
  return {
    attributes: JSON.stringify({ ...options.classParameters, ...kubeletAttributes }),
    secrets: JSON.stringify(options.nodePublishSecrets ?? {}),
    target_path: `/var/lib/kubelet/pods/${pod.uid}/volumes/kubernetes.io~csi/secrets/mount`,
    permission: '420',
    current_object_version: options.currentObjectVersions ?? [],
  };
}

export interface InjectorWorld {
  kc: KubeConfig;
  namespace: string;
  server: TestServer;
  owner: Account;
  /** The node-wide key the injector was started with. */
  node: Keypair;
  injector: RunningInjector;
  client: DriverClient;
  /** Every log line the injector wrote, raw JSON text. */
  injectorLogs: string[];
  socketDir: string;
  /** Creates a SecretProviderClass with provider nosana and these parameters in the world's namespace. */
  createClass(name: string, parameters: Record<string, string>): Promise<void>;
  /** Creates that class, then mounts it for a new pod of the world's namespace, as the driver would. */
  mountNewClass(name: string, parameters: Record<string, string>): Promise<MountResponse>;
  replaceClassParameters(name: string, parameters: Record<string, string>): Promise<void>;
  /** Stores values under the owner and grants `keys` of job `job` to the node. */
  grant(job: string, keys: string[]): Promise<void>;
  put(key: string, value: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `extraEndpoints` are allowed after the test server's own URL (which stays the default endpoint); `tls` runs that
 * server on HTTPS (its TLS_* settings) with the CA file its test client trusts.
 */
export async function startWorld(
  label: string, config: Partial<InjectorConfig> = {}, extraEndpoints: string[] = [], tls?: { env: Record<string, string>; caFile: string },
): Promise<InjectorWorld> {
  const kc = kubeConfig();
  await applySecretProviderClassCrd(kc);
  const namespace = `inj-${label}-${randomBytes(3).toString('hex')}`;
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace, labels: { 'nosana-secrets-test': 'injector' } } } });
  const custom = kc.makeApiClient(CustomObjectsApi);

  const server = await startTestServer(tls?.env, undefined, tls?.caFile);
  const owner = await newAccount(server);
  const node = generateKeypair();
  const socketDir = mkdtempSync(join(tmpdir(), 'nsi-'));
  const keypairPath = join(socketDir, 'node-keypair.json');
  writeFileSync(keypairPath, keypairFileContent(node), { mode: 0o600 });
  const { logs: injectorLogs, logger } = captureLogs();
  const injector = await startInjector({
    socketDir, metricsHost: '127.0.0.1', metricsPort: 0, nodeKeypairPath: keypairPath, allowedEndpoints: [server.url, ...extraEndpoints], serverTimeoutMs: 2_000, ...config,
  }, logger, kc);
  const client = driverClient(injector.socketPath);

  const classBody = (name: string, parameters: Record<string, string>) => ({
    apiVersion: `${SPC_GROUP}/${SPC_VERSION}`, kind: 'SecretProviderClass',
    metadata: { name, namespace }, spec: { provider: 'nosana', parameters },
  });

  const createClass = async (name: string, parameters: Record<string, string>) => {
    await custom.createNamespacedCustomObject({ group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL, body: classBody(name, parameters) });
  };

  return {
    kc, namespace, server, owner, node, injector, client, injectorLogs, socketDir, createClass,
    async mountNewClass(name, parameters) {
      await createClass(name, parameters);
      return client.mount(driverRequest({ pod: newPod(namespace), secretProviderClass: name, classParameters: parameters }));
    },
    async replaceClassParameters(name, parameters) {
      const current = await custom.getNamespacedCustomObject({ group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL, name }) as { metadata: { resourceVersion: string } };
      const body = classBody(name, parameters);
      await custom.replaceNamespacedCustomObject({
        group: SPC_GROUP, version: SPC_VERSION, namespace, plural: SPC_PLURAL, name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: current.metadata.resourceVersion } },
      });
    },
    async grant(job, keys) {
      await server.client.putGrant(owner.token, job, keys, [node.address]);
    },
    async put(key, value) {
      await server.client.putSecret(owner.token, key, value);
    },
    async close() {
      client.close();
      await injector.close();
      await server.close();
      // Pods bound to the CSI test's node would wait forever for a kubelet to confirm their end: none runs here.
      await core.deleteCollectionNamespacedPod({ namespace, gracePeriodSeconds: 0 }).catch(() => undefined);
      await core.deleteNamespace({ name: namespace }).catch(() => undefined); // best effort; namespaces are unique
    },
  };
}

/** The files of a Mount answer as {path: text}. */
export function filesOf(response: MountResponse): Record<string, string> {
  return Object.fromEntries(response.files.map((file) => [file.path, Buffer.from(file.contents).toString('utf8')]));
}

export function secretValue(label: string): string {
  return `${label}-value-${randomBytes(12).toString('hex')}`;
}
