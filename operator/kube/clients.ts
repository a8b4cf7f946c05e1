// The Kubernetes API clients the operator uses, sharing one keep-alive connection pool. client-node builds a new
// https.Agent for every request, so each call would pay a fresh TLS handshake; at a thousand bindings that handshake
// is most of the operator's CPU. Authentication headers (bearer tokens, refreshed by client-node) are still applied
// on every request; only the TLS options (CA, client certificate) are taken once.
import { Agent } from 'node:https';
import {
  ApiException, AppsV1Api, CoordinationV1Api, CoreV1Api, createConfiguration, CustomObjectsApi, EventsV1Api, KubeConfig,
  ServerConfiguration, type RequestContext, type SecurityAuthentication,
} from '@kubernetes/client-node';

const REQUEST_TIMEOUT_MS = 30_000;

/** Told of every API call as its Kubernetes verb (get, list, create, patch...) and resource (secrets, nosanasecretbindings/status). */
export type RequestObserver = (verb: string, resource: string) => void;

class PooledAuthentication implements SecurityAuthentication {
  private agent?: Agent;

  constructor(private readonly kubeConfig: KubeConfig, private readonly observe?: RequestObserver) {}

  getName(): string {
    return 'kubeconfig-pooled';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kubeConfig.applySecurityAuthentication(context);
    const perRequest = context.getAgent();
    if (perRequest instanceof Agent) {
      this.agent ??= new Agent({ ...perRequest.options, keepAlive: true, maxSockets: 16 });
      context.setAgent(this.agent);
    }
    // No call may hang a worker: an API server that stops answering mid-request fails the call, which is retried.
    if (!context.getSignal()) context.setSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS));
    if (this.observe) this.observe(...verbAndResource(context.getHttpMethod(), context.getUrl()));
  }

  close(): void {
    this.agent?.destroy();
  }
}

export interface KubeClients {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  events: EventsV1Api;
  /** Deployments, StatefulSets and DaemonSets, for spec.rolloutOnChange. */
  apps: AppsV1Api;
  /** Closes the pooled connections. */
  close(): void;
}

/** Loads KUBECONFIG, ~/.kube/config or the in-cluster service account, as kubectl does. */
export function loadKubeConfig(): KubeConfig {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  if (!kubeConfig.getCurrentCluster()) {
    throw new Error('no Kubernetes cluster configured: set KUBECONFIG, or run in a pod with a service account');
  }
  return kubeConfig;
}

/**
 * The verb and resource of an API call, from its method and URL: /api/v1/namespaces/ns/secrets/name is (get,
 * secrets), /apis/g/v/namespaces/ns/plural/name/status is (patch, plural/status); names never appear.
 */
export function verbAndResource(method: string, url: string): [string, string] {
  const { pathname, searchParams } = new URL(url);
  const parts = pathname.split('/').filter(Boolean);
  let rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [resource = '', name, subresource] = rest;
  const named = name !== undefined;
  const verb = method === 'GET' ? (searchParams.get('watch') === 'true' ? 'watch' : named ? 'get' : 'list')
    : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'PATCH' ? 'patch'
      : method === 'DELETE' ? (named ? 'delete' : 'deletecollection') : method.toLowerCase();
  return [verb, subresource ? `${resource}/${subresource}` : resource];
}

/** `observe`, when given, is told of every call the clients make (the operator counts them in its metrics). */
export function createKubeClients(kubeConfig: KubeConfig, observe?: RequestObserver): KubeClients {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster: set its current-context');
  const authentication = new PooledAuthentication(kubeConfig, observe);
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: authentication },
  });
  return {
    kubeConfig,
    core: new CoreV1Api(configuration),
    custom: new CustomObjectsApi(configuration),
    coordination: new CoordinationV1Api(configuration),
    events: new EventsV1Api(configuration),
    apps: new AppsV1Api(configuration),
    close: () => authentication.close(),
  };
}

/** The HTTP status of a failed API call (404, 409...), or undefined when the call did not get an answer. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/** The API server's own message of a failed call (`Status.message`), else the error's message. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = typeof error.body === 'string' ? safeParse(error.body) : error.body;
    if (body && typeof body === 'object' && 'message' in body && typeof body.message === 'string') return body.message;
    return `the API server answered ${error.code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
