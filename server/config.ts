// The server's settings, from environment variables with the seed's names. Secrets that are unset (JWT_SECRET, the
// encryption keyring) are generated once into files under SECRETS_STATE_DIR with a warning, so a laptop run needs
// no setup and a restart keeps working; a cluster passes them from Kubernetes Secrets instead.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError, envInt, envOptional, envString, type Env } from '../common/config.js';
import type { Logger } from '../common/log.js';
import { AUDIENCE_PATTERN, AUDIENCE_RULE } from '../common/login.js';
import { newKeyringEntry, parseKeyring, type Kek } from './encryption.js';
import { loadNosanaConfig, type NosanaConfig } from './grants/nosana/config.js';
import { DEFAULT_STORAGE_CONNECTION } from './storage/open.js';
import type { TlsFiles } from './tls.js';

export const GRANT_SOURCES = ['api', 'nosana'] as const;
export type GrantSourceName = (typeof GRANT_SOURCES)[number];
export const UNBOUND_LOGIN_MODES = ['accept', 'refuse'] as const;

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
  /** This server's name inside audience-bound logins (`nosana_secret_<audience>_<ts>`), advertised by GET /v1/info. */
  loginAudience: string;
  /** Whether upstream's unbound `nosana_secret_<ts>`, which any server could have captured, still logs in. */
  unboundLogin: (typeof UNBOUND_LOGIN_MODES)[number];
  tokenTtlSeconds: number;
  maxValueBytes: number;
  grantSources: GrantSourceName[];
  /** Settings of the Nosana network source (NOSANA_*, IPFS_*), read when GRANT_SOURCES names `nosana`. */
  nosana?: NosanaConfig;
  /** Connection limits and timeouts (milliseconds), so slow or idle clients cannot pin memory. */
  http: HttpLimits;
  /** Logins (POST /login and the job token exchange) per window, per source and per address; 0 turns one off. */
  loginRateLimit: { perSource: number; perAddress: number; windowSeconds: number };
  /** HTTPS certificate and key files (TLS_CERT_FILE, TLS_KEY_FILE); plain HTTP when undefined. */
  tls?: TlsFiles;
  /** METRICS_PORT: /metrics on a port of its own (plain HTTP) instead of the API port. */
  metricsPort?: number;
}

export interface HttpLimits {
  /** Time for the request line and headers to arrive. */
  headersTimeoutMs: number;
  /** Time for the whole request, body included, to arrive. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection stays open between requests. */
  keepAliveTimeoutMs: number;
  /** A connection silent this long in either direction is closed (a client that stops reading a response, too). */
  idleTimeoutMs: number;
  maxConnections: number;
}

const MIN_JWT_SECRET_BYTES = 32;
/** Estimated bits a JWT secret must carry: 32 random hex digits (128 bits) estimate at about 117, rarely below 90. */
const MIN_JWT_SECRET_BITS = 80;
const MIN_JWT_SECRET_DISTINCT_BYTES = 10;

/**
 * A rough estimate of the entropy of `secret` in bits: its length times the Shannon entropy of its byte frequencies.
 * It cannot prove a secret good, but it does catch the obvious mistakes: one character repeated, a short word
 * repeated, a handful of distinct characters.
 */
export function estimatedEntropyBits(secret: Uint8Array): number {
  const counts = new Map<number, number>();
  for (const byte of secret) counts.set(byte, (counts.get(byte) ?? 0) + 1);
  let bitsPerByte = 0;
  for (const count of counts.values()) {
    const p = count / secret.length;
    bitsPerByte -= p * Math.log2(p);
  }
  return bitsPerByte * secret.length;
}

function checkJwtSecret(secret: string): void {
  const fix = 'make one with: openssl rand -base64 48';
  const bytes = Buffer.from(secret);
  if (bytes.length < MIN_JWT_SECRET_BYTES) throw new ConfigError(`JWT_SECRET is shorter than ${MIN_JWT_SECRET_BYTES} bytes: ${fix}`);
  const distinct = new Set(bytes).size;
  if (distinct < MIN_JWT_SECRET_DISTINCT_BYTES || estimatedEntropyBits(bytes) < MIN_JWT_SECRET_BITS) {
    throw new ConfigError(`JWT_SECRET looks guessable (${distinct} distinct characters, about ${Math.floor(estimatedEntropyBits(bytes))} bits ` +
      `where at least ${MIN_JWT_SECRET_BITS} are needed): use random bytes, ${fix}`);
  }
}

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
  checkJwtSecret(jwtSecret);

  let keyringText = envOptional(env, 'ENCRYPTION_KEYS');
  let keyringSource = 'ENCRYPTION_KEYS';
  if (keyringText === undefined) {
    const file = envOptional(env, 'ENCRYPTION_KEYS_FILE');
    keyringSource = file ?? join(stateDir, 'encryption-keys');
    keyringText = file !== undefined
      ? readFileSync(file, 'utf8')
      : readOrCreate(keyringSource, () => `${newKeyringEntry()}\n`, 'key-encryption key', 'ENCRYPTION_KEYS', log);
  }

  // The default audience is derived from the JWT secret: stable across restarts, the same on every replica that
  // shares the secret, and different for every deployment, without anyone having to pick a name. Publishing 64 bits
  // of a hash of it tells a guesser nothing new: anyone can log in with a fresh key and test guesses on the HS256 token.
  const loginAudience = envOptional(env, 'LOGIN_AUDIENCE') ??
    `nss-${createHash('sha256').update('nosana-secrets login audience\0').update(jwtSecret).digest('hex').slice(0, 16)}`;
  if (!new RegExp(AUDIENCE_PATTERN).test(loginAudience)) {
    throw new ConfigError(`LOGIN_AUDIENCE=${JSON.stringify(loginAudience)} is not valid: use ${AUDIENCE_RULE}, e.g. secrets.example.com`);
  }
  const unboundLogin = envString(env, 'LOGIN_UNBOUND', 'accept');
  if (!(UNBOUND_LOGIN_MODES as readonly string[]).includes(unboundLogin)) {
    throw new ConfigError(`LOGIN_UNBOUND=${JSON.stringify(unboundLogin)} is not valid: set it to accept or refuse`);
  }

  const sources = envString(env, 'GRANT_SOURCES', 'api').split(',').map((s) => s.trim()).filter(Boolean);
  for (const source of sources) {
    if (!(GRANT_SOURCES as readonly string[]).includes(source)) {
      throw new ConfigError(`GRANT_SOURCES names "${source}": use a comma-separated list of ${GRANT_SOURCES.join(', ')}`);
    }
  }

  const seconds = (name: string, fallback: number) => envInt(env, name, fallback, { min: 1, max: 3600 }) * 1000;
  const http: HttpLimits = {
    headersTimeoutMs: seconds('HEADERS_TIMEOUT_SECONDS', 10),
    requestTimeoutMs: seconds('REQUEST_TIMEOUT_SECONDS', 30),
    keepAliveTimeoutMs: seconds('KEEP_ALIVE_TIMEOUT_SECONDS', 72),
    idleTimeoutMs: seconds('IDLE_TIMEOUT_SECONDS', 120),
    maxConnections: envInt(env, 'MAX_CONNECTIONS', 512, { min: 1, max: 65_536 }),
  };
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    throw new ConfigError('HEADERS_TIMEOUT_SECONDS is longer than REQUEST_TIMEOUT_SECONDS: the headers are part of the request, set it lower');
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
    loginAudience,
    unboundLogin: unboundLogin as ServerConfig['unboundLogin'],
    tokenTtlSeconds: envInt(env, 'TOKEN_TTL_SECONDS', 900, { min: 30, max: 86_400 }),
    maxValueBytes: envInt(env, 'MAX_VALUE_BYTES', 65_536, { min: 1, max: 1_048_576 }),
    grantSources: sources as GrantSourceName[],
    nosana: sources.includes('nosana') ? loadNosanaConfig(env) : undefined,
    http,
    loginRateLimit: {
      perSource: envInt(env, 'LOGIN_RATE_LIMIT_PER_SOURCE', 1200, { min: 0, max: 1_000_000_000 }),
      perAddress: envInt(env, 'LOGIN_RATE_LIMIT_PER_ADDRESS', 600, { min: 0, max: 1_000_000_000 }),
      windowSeconds: envInt(env, 'LOGIN_RATE_LIMIT_WINDOW_SECONDS', 60, { min: 1, max: 3600 }),
    },
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
