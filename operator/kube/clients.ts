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

class PooledAuthentication implements SecurityAuthentication {
  private agent?: Agent;

  constructor(private readonly kubeConfig: KubeConfig) {}

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

export function createKubeClients(kubeConfig: KubeConfig): KubeClients {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster: set its current-context');
  const authentication = new PooledAuthentication(kubeConfig);
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
