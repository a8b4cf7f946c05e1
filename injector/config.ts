// The injector's settings: flags win over environment variables, which win over the defaults.
import { ConfigError, envCaFile, envInt, envOptional, envString, type Env } from '../common/config.js';
import { parseEndpointList } from '../common/endpoints.js';

export const DEFAULT_SOCKET_DIR = '/var/run/secrets-store-csi-providers';
export const DEFAULT_METRICS_PORT = 8095;
/** What a refusal of an endpoint tells the user to do. */
export const INJECTOR_ENDPOINTS_FIX = 'list it in NOSANA_INJECTOR_ENDPOINTS (comma-separated URLs; chart: injector.extraAllowedEndpoints) or pass --endpoint URL';
/** Every interface, so that Prometheus can scrape the pod; METRICS_HOST narrows it. */
export const DEFAULT_METRICS_HOST = '0.0.0.0';

export interface InjectorConfig {
  socketDir: string;
  metricsPort: number;
  metricsHost: string;
  /** The node-wide Solana keypair file; optional when every class names a nodeKeySecret. */
  nodeKeypairPath?: string;
  /** The secrets servers this node may sign in to; the first is the default endpoint. */
  allowedEndpoints: string[];
  serverTimeoutMs: number;
  /** NOSANA_SECRETS_CA_FILE: https servers are trusted by this CA alone; the system CAs when undefined. */
  caFile?: string;
}

export interface InjectorFlags {
  'socket-dir'?: string;
  'metrics-host'?: string;
  'metrics-port'?: string;
  'node-keypair'?: string;
  'ca-file'?: string;
  endpoint?: string[];
}

export function loadInjectorConfig(env: Env, flags: InjectorFlags = {}): InjectorConfig {
  const withFlags: Env = {
    ...env,
    NOSANA_INJECTOR_SOCKET_DIR: flags['socket-dir'] ?? env.NOSANA_INJECTOR_SOCKET_DIR,
    METRICS_HOST: flags['metrics-host'] ?? env.METRICS_HOST,
    METRICS_PORT: flags['metrics-port'] ?? env.METRICS_PORT,
    NOSANA_NODE_KEYPAIR: flags['node-keypair'] ?? env.NOSANA_NODE_KEYPAIR,
  };
  const endpointList = flags.endpoint?.length ? flags.endpoint.join(',')
    : envOptional(env, 'NOSANA_INJECTOR_ENDPOINTS') ?? envOptional(env, 'NOSANA_SECRETS_ENDPOINT') ?? '';
  const allowedEndpoints = parseEndpointList(endpointList, 'endpoint', 'http://nosana-secrets.nosana-secrets:4124');
  if (allowedEndpoints.length === 0) throw new ConfigError(`no secrets server is allowed: ${INJECTOR_ENDPOINTS_FIX}`);
  return {
    socketDir: envString(withFlags, 'NOSANA_INJECTOR_SOCKET_DIR', DEFAULT_SOCKET_DIR),
    metricsPort: envInt(withFlags, 'METRICS_PORT', DEFAULT_METRICS_PORT, { min: 0, max: 65535 }),
    metricsHost: envString(withFlags, 'METRICS_HOST', DEFAULT_METRICS_HOST),
    nodeKeypairPath: envOptional(withFlags, 'NOSANA_NODE_KEYPAIR'),
    allowedEndpoints,
    serverTimeoutMs: envInt(env, 'NOSANA_INJECTOR_SERVER_TIMEOUT_MS', 5_000, { min: 100, max: 60_000 }),
    caFile: envCaFile(env, flags['ca-file']),
  };
}
