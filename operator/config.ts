// The operator's settings, from environment variables (the CLI's flags set the same names).
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ConfigError, envCaFile, envInt, envOptional, envString, requireHttpUrl, type Env } from '../common/config.js';
import { parseEndpointList } from '../common/endpoints.js';
import { parseDuration } from './api/duration.js';

export const DEFAULT_ENDPOINT = 'http://nosana-secrets.nosana-secrets.svc:4124';
/** What a binding refused for its endpoint tells the user to do. */
export const OPERATOR_ENDPOINTS_FIX = 'remove spec.endpoint, or list that server in the operator\'s NOSANA_OPERATOR_ALLOWED_ENDPOINTS (chart: operator.extraAllowedEndpoints)';
const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export interface OperatorConfig {
  metricsPort: number;
  metricsHost: string;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  workers: number;
  /** The secrets server of bindings without spec.endpoint. */
  defaultEndpoint: string;
  /** The servers a binding's spec.endpoint may name: the default, then NOSANA_OPERATOR_ALLOWED_ENDPOINTS. */
  allowedEndpoints: string[];
  /** NOSANA_SECRETS_CA_FILE: https servers are trusted by this CA alone; the system CAs when undefined. */
  caFile?: string;
  leaderElection: boolean;
  leaseName: string;
  leaseNamespace: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

function durationSetting(env: Env, name: string, fallback: string): number {
  const text = envString(env, name, fallback);
  try {
    return parseDuration(text);
  } catch {
    throw new ConfigError(`${name}=${JSON.stringify(text)} is not a duration: set it like ${fallback}`);
  }
}

export function loadOperatorConfig(env: Env): OperatorConfig {
  const leaderElect = envString(env, 'LEADER_ELECT', 'true');
  if (leaderElect !== 'true' && leaderElect !== 'false') {
    throw new ConfigError(`LEADER_ELECT=${JSON.stringify(leaderElect)} is not valid: set it to true or false`);
  }
  const defaultEndpoint = requireHttpUrl(envString(env, 'NOSANA_SECRETS_ENDPOINT', DEFAULT_ENDPOINT), 'NOSANA_SECRETS_ENDPOINT', DEFAULT_ENDPOINT);
  const config: OperatorConfig = {
    metricsPort: envInt(env, 'METRICS_PORT', 8096, { min: 0, max: 65535 }),
    metricsHost: envString(env, 'METRICS_HOST', '0.0.0.0'),
    namespace: envOptional(env, 'WATCH_NAMESPACE'),
    // A reconcile waits on round trips (API server, secrets server) far more than on CPU: more in flight, more per second.
    workers: envInt(env, 'OPERATOR_WORKERS', 16, { min: 1, max: 64 }),
    defaultEndpoint,
    allowedEndpoints: [defaultEndpoint, ...parseEndpointList(envString(env, 'NOSANA_OPERATOR_ALLOWED_ENDPOINTS', ''), 'NOSANA_OPERATOR_ALLOWED_ENDPOINTS', 'https://secrets.example.com,http://other.ns:4124')],
    caFile: envCaFile(env),
    leaderElection: leaderElect === 'true',
    leaseName: envString(env, 'LEADER_ELECTION_LEASE_NAME', 'nosana-secrets-operator'),
    leaseNamespace: envOptional(env, 'LEADER_ELECTION_NAMESPACE') ?? envOptional(env, 'POD_NAMESPACE') ??
      (existsSync(SERVICE_ACCOUNT_NAMESPACE) ? readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() : 'default'),
    identity: envOptional(env, 'POD_NAME') ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    leaseDurationMs: durationSetting(env, 'LEADER_ELECTION_LEASE_DURATION', '15s'),
    renewDeadlineMs: durationSetting(env, 'LEADER_ELECTION_RENEW_DEADLINE', '10s'),
    retryPeriodMs: durationSetting(env, 'LEADER_ELECTION_RETRY_PERIOD', '2s'),
  };
  if (!(config.retryPeriodMs < config.renewDeadlineMs && config.renewDeadlineMs < config.leaseDurationMs)) {
    throw new ConfigError('leader election needs LEADER_ELECTION_RETRY_PERIOD < LEADER_ELECTION_RENEW_DEADLINE < LEADER_ELECTION_LEASE_DURATION');
  }
  return config;
}
