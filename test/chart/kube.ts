// The real kube-apiserver from test/env, through @kubernetes/client-node (no kubectl on this machine).
import {
  KubeConfig, KubernetesObjectApi, PatchStrategy, ServerConfiguration, createConfiguration, type Configuration,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { kubeConfig } from '../helpers/kube.js';

const FIELD_MANAGER = 'nosana-secrets-chart-test';

export { kubeConfig };

/**
 * An object client that sends each object exactly as rendered and asks the API server to refuse unknown or duplicate
 * fields. (@kubernetes/client-node re-serialises built-in kinds through its models, which silently drops a field it
 * does not know: a misspelt field in the chart would never reach the server.)
 */
export class Cluster {
  readonly objects: KubernetesObjectApi;

  constructor(private readonly kc: KubeConfig) {
    this.objects = new KubernetesObjectApi(this.configuration());
  }

  private configuration(rawBody?: string): Configuration {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error(`${process.env.KUBECONFIG} has no current cluster`);
    return createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: this.kc },
      promiseMiddleware: [{
        pre: async (context) => {
          context.setQueryParam('fieldValidation', 'Strict');
          if (rawBody !== undefined && context.getHttpMethod() === 'PATCH') context.setBody(rawBody);
          return context;
        },
        post: async (context) => context,
      }],
    });
  }

  /** Server-side apply, as `kubectl apply --server-side` does; with dryRun nothing is stored. */
  async apply(object: KubernetesObject, dryRun: boolean): Promise<void> {
    // A client per call: patch() runs the middleware of its client's configuration, not of the one passed to it.
    const raw = new KubernetesObjectApi(this.configuration(JSON.stringify(object)));
    await raw.patch(object, undefined, dryRun ? 'All' : undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }
}

export function strictClient(kc: KubeConfig): Cluster {
  return new Cluster(kc);
}

export function describeError(error: unknown): string {
  const body = (error as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  return error instanceof Error ? error.message : String(error);
}

export async function apply(cluster: Cluster, object: KubernetesObject, dryRun: boolean): Promise<void> {
  await cluster.apply(object, dryRun);
}

export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${describeError(last)}` : ''}`);
}

/** Creates (or updates) CRDs for real and waits until the API server serves their kinds. */
export async function establishCrds(cluster: Cluster, crds: KubernetesObject[]): Promise<void> {
  for (const crd of crds) await cluster.apply(crd, false);
  for (const crd of crds) {
    await waitUntil(`CRD ${crd.metadata?.name} to be established`, async () => {
      const live = await cluster.objects.read({ apiVersion: crd.apiVersion!, kind: crd.kind!, metadata: { name: crd.metadata!.name! } }) as
        { status?: { conditions?: { type: string; status: string }[] } };
      return live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
  }
}
