// The injector's entry: settings, the node key, the SecretProviderClass reader, the gRPC provider on its socket, the
// metrics and probe port, and a shutdown that removes the socket.
import type { Server } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { AllowedEndpoints } from '../common/endpoints.js';
import { NodeSessions } from '../common/node-sessions.js';
import { createLogger, type Logger } from '../common/log.js';
import { readKeypairFile } from '../common/login.js';
import { startProbeServer } from '../common/metrics.js';
import { INJECTOR_ENDPOINTS_FIX, type InjectorConfig } from './config.js';
import { createInjectorMetrics, type InjectorMetrics } from './metrics.js';
import { mount } from './mount.js';
import { serveProvider } from './provider.js';
import { SecretProviderClasses } from './secret-provider-class.js';

export interface RunningInjector {
  socketPath: string;
  /** The metrics and probe port actually bound (useful with port 0). */
  metricsPort: number;
  metrics: InjectorMetrics;
  close(): Promise<void>;
}

export async function startInjector(config: InjectorConfig, log: Logger = createLogger('injector'), kubeConfig?: KubeConfig): Promise<RunningInjector> {
  const nodeKeypair = config.nodeKeypairPath === undefined ? undefined : await readKeypairFile(config.nodeKeypairPath);
  if (!kubeConfig) {
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
  }
  const metrics = createInjectorMetrics();
  const context = {
    sessions: new NodeSessions({
      timeoutMs: config.serverTimeoutMs,
      caFile: config.caFile,
      observer: {
        call: (call, outcome) => metrics.serverCalls.inc({ call, outcome }),
        tokenCache: (result) => metrics.tokenCache.inc({ result }),
      },
    }),
    classes: new SecretProviderClasses(kubeConfig),
    endpoints: new AllowedEndpoints(config.allowedEndpoints, INJECTOR_ENDPOINTS_FIX),
    nodeKeypair, metrics, log,
  };
  const provider = await serveProvider(config.socketDir, { mount: (request) => mount(context, request) });
  let probes: Server;
  try {
    probes = await startProbeServer({ port: config.metricsPort, host: config.metricsHost, registry: metrics.registry, ready: () => true });
  } catch (error) {
    await provider.close();
    throw error;
  }
  const address = probes.address();
  const metricsPort = typeof address === 'object' && address ? address.port : config.metricsPort;
  log.info({ socket: provider.socketPath, metricsHost: config.metricsHost, metricsPort, endpoints: config.allowedEndpoints, node: nodeKeypair?.address }, 'injector listening');

  return {
    socketPath: provider.socketPath, metricsPort, metrics,
    async close() {
      await provider.close();
      await new Promise<void>((resolve) => probes.close(() => resolve()));
    },
  };
}
