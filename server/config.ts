// The server's settings, from environment variables with the seed's names. Secrets that are unset (JWT_SECRET, the
// encryption keyring) are generated once into files under SECRETS_STATE_DIR with a warning, so a laptop run needs
// no setup and a restart keeps working; a cluster passes them from Kubernetes Secrets instead.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError, envInt, envOptional, envString, type Env } from '../common/config.js';
import type { Logger } from '../common/log.js';
import { newKeyringEntry, parseKeyring, type Kek } from './encryption.js';
import { loadNosanaConfig, type NosanaConfig } from './grants/nosana/config.js';
import { DEFAULT_STORAGE_CONNECTION } from './storage/open.js';
import type { TlsFiles } from './tls.js';

export const GRANT_SOURCES = ['api', 'nosana'] as const;
export type GrantSourceName = (typeof GRANT_SOURCES)[number];

export interface ServerConfig {
  port: number;
  host: string;
  storageConnection: string;
  jwtSecret: Uint8Array;
  keyring: Kek[];
  /** How old a login timestamp may be (seconds). */
  loginMaxAgeSeconds: number;
  /** How far in the future a login timestamp may be (seconds), for clock skew. */
  loginMaxFutureSeconds: number;
  tokenTtlSeconds: number;
  maxValueBytes: number;
  grantSources: GrantSourceName[];
  /** Settings of the Nosana network source (NOSANA_*, IPFS_*), read when GRANT_SOURCES names `nosana`. */
  nosana?: NosanaConfig;
  /** HTTPS certificate and key files (TLS_CERT_FILE, TLS_KEY_FILE); plain HTTP when undefined. */
  tls?: TlsFiles;
  /** METRICS_PORT: /metrics on a port of its own (plain HTTP) instead of the API port. */
  metricsPort?: number;
}

const MIN_JWT_SECRET_BYTES = 32;

/** A new JWT signing secret: 48 random bytes, base64. */
export function newJwtSecret(): string {
  return randomBytes(48).toString('base64');
}

function readOrCreate(path: string, create: () => string, what: string, variable: string, log: Logger): string {
  if (!existsSync(path)) {
    mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
    writeFileSync(path, create(), { mode: 0o600, flag: 'wx' });
    log.warn({ file: path }, `${variable} is not set: generated a ${what} into a local file; set ${variable} (or ${variable}_FILE) in production and keep it safe`);
  }
  chmodSync(path, 0o600);
  return readFileSync(path, 'utf8').trim();
}

export function loadServerConfig(env: Env, log: Logger): ServerConfig {
  const stateDir = envString(env, 'SECRETS_STATE_DIR', '.nosana-secrets');

  let jwtSecret = envOptional(env, 'JWT_SECRET');
  if (jwtSecret === undefined) {
    const file = envOptional(env, 'JWT_SECRET_FILE');
    jwtSecret = file !== undefined
      ? readFileSync(file, 'utf8').trim()
      : readOrCreate(join(stateDir, 'jwt-secret'), newJwtSecret, 'JWT signing secret', 'JWT_SECRET', log);
  }
  if (Buffer.byteLength(jwtSecret) < MIN_JWT_SECRET_BYTES) {
    throw new ConfigError(`JWT_SECRET is shorter than ${MIN_JWT_SECRET_BYTES} bytes: make one with: openssl rand -base64 48`);
  }

  let keyringText = envOptional(env, 'ENCRYPTION_KEYS');
  let keyringSource = 'ENCRYPTION_KEYS';
  if (keyringText === undefined) {
    const file = envOptional(env, 'ENCRYPTION_KEYS_FILE');
    keyringSource = file ?? join(stateDir, 'encryption-keys');
    keyringText = file !== undefined
      ? readFileSync(file, 'utf8')
      : readOrCreate(keyringSource, () => `${newKeyringEntry()}\n`, 'key-encryption key', 'ENCRYPTION_KEYS', log);
  }

  const sources = envString(env, 'GRANT_SOURCES', 'api').split(',').map((s) => s.trim()).filter(Boolean);
  for (const source of sources) {
    if (!(GRANT_SOURCES as readonly string[]).includes(source)) {
      throw new ConfigError(`GRANT_SOURCES names "${source}": use a comma-separated list of ${GRANT_SOURCES.join(', ')}`);
    }
  }

  return {
    tls: loadTlsFiles(env),
    metricsPort: envOptional(env, 'METRICS_PORT') === undefined ? undefined : envInt(env, 'METRICS_PORT', 0, { min: 0, max: 65535 }),
    port: envInt(env, 'PORT', 4124, { min: 0, max: 65535 }),
    host: envString(env, 'HOST', '0.0.0.0'),
    storageConnection: envString(env, 'STORAGE_CONNECTION', DEFAULT_STORAGE_CONNECTION),
    jwtSecret: new TextEncoder().encode(jwtSecret),
    keyring: parseKeyring(keyringText, keyringSource),
    loginMaxAgeSeconds: envInt(env, 'LOGIN_MAX_AGE_SECONDS', 60, { min: 1, max: 3600 }),
    loginMaxFutureSeconds: envInt(env, 'LOGIN_MAX_FUTURE_SECONDS', 10, { min: 0, max: 300 }),
    tokenTtlSeconds: envInt(env, 'TOKEN_TTL_SECONDS', 900, { min: 30, max: 86_400 }),
    maxValueBytes: envInt(env, 'MAX_VALUE_BYTES', 65_536, { min: 1, max: 1_048_576 }),
    grantSources: sources as GrantSourceName[],
    nosana: sources.includes('nosana') ? loadNosanaConfig(env) : undefined,
  };
}

function loadTlsFiles(env: Env): TlsFiles | undefined {
  const certFile = envOptional(env, 'TLS_CERT_FILE');
  const keyFile = envOptional(env, 'TLS_KEY_FILE');
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    throw new ConfigError('HTTPS needs both TLS_CERT_FILE and TLS_KEY_FILE: set both (PEM files), or neither for plain HTTP');
  }
  return { certFile, keyFile, reloadSeconds: envInt(env, 'TLS_RELOAD_SECONDS', 30, { min: 1, max: 3600 }) };
}
