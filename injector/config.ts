// The injector's settings: flags win over environment variables, which win over the defaults.
import { ConfigError, envCaFile, envInt, envOptional, envString, requireHttpUrl, type Env } from '../common/config.js';
import { normalizeEndpoint } from './mount.js';

export const DEFAULT_SOCKET_DIR = '/var/run/secrets-store-csi-providers';
export const DEFAULT_METRICS_PORT = 8095;

export interface InjectorConfig {
  socketDir: string;
  metricsPort: number;
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
  'metrics-port'?: string;
  'node-keypair'?: string;
  'ca-file'?: string;
  endpoint?: string[];
}

export function loadInjectorConfig(env: Env, flags: InjectorFlags = {}): InjectorConfig {
  const withFlags: Env = {
    ...env,
    NOSANA_INJECTOR_SOCKET_DIR: flags['socket-dir'] ?? env.NOSANA_INJECTOR_SOCKET_DIR,
    METRICS_PORT: flags['metrics-port'] ?? env.METRICS_PORT,
    NOSANA_NODE_KEYPAIR: flags['node-keypair'] ?? env.NOSANA_NODE_KEYPAIR,
  };
  const endpointList = flags.endpoint?.length ? flags.endpoint.join(',')
    : envOptional(env, 'NOSANA_INJECTOR_ENDPOINTS') ?? envOptional(env, 'NOSANA_SECRETS_ENDPOINT') ?? '';
  const allowedEndpoints = endpointList.split(',').map(normalizeEndpoint).filter(Boolean);
  if (allowedEndpoints.length === 0) {
    throw new ConfigError('no secrets server is allowed: set NOSANA_INJECTOR_ENDPOINTS (comma-separated URLs) or pass --endpoint URL');
  }
  for (const endpoint of allowedEndpoints) requireHttpUrl(endpoint, 'endpoint', 'http://nosana-secrets.nosana-secrets:4124');
  return {
    socketDir: envString(withFlags, 'NOSANA_INJECTOR_SOCKET_DIR', DEFAULT_SOCKET_DIR),
    metricsPort: envInt(withFlags, 'METRICS_PORT', DEFAULT_METRICS_PORT, { min: 0, max: 65535 }),
    nodeKeypairPath: envOptional(withFlags, 'NOSANA_NODE_KEYPAIR'),
    allowedEndpoints,
    serverTimeoutMs: envInt(env, 'NOSANA_INJECTOR_SERVER_TIMEOUT_MS', 5_000, { min: 100, max: 60_000 }),
    caFile: envCaFile(env, flags['ca-file']),
  };
}
