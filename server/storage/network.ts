// What the network backends share: turning driver errors into the contract's two error kinds, and key order. A
// failure to reach the database becomes StorageUnavailableError (the API answers 503 and the pool reconnects by
// itself); anything else is a bug or a configuration problem and is passed on. Messages never carry the password.
import { StorageConfigError, StorageUnavailableError } from './contract.js';

/** Node's socket and DNS error codes that mean "the database is not reachable right now". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH',
  'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'ENOTCONN', 'ESHUTDOWN', 'ERR_SOCKET_CLOSED', 'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ETIMEOUT',
]);

export interface NetworkStorageOptions {
  /** How long to wait for a connection (and for an answer) before reporting the database unreachable; default 5 s. */
  timeoutMs?: number;
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True when the error (or its cause) is a socket or DNS failure. */
export function isNetworkError(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const code = errorCode(current);
    if (code && NETWORK_CODES.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** What to print about a connection string: scheme, host and port, never the user's password. */
export interface Target {
  /** e.g. "postgresql" */
  scheme: string;
  /** e.g. "db.internal:5432" */
  where: string;
  /** The password from the connection string, removed from any driver message that might echo it. */
  password?: string;
}

export function scrub(message: string, target: Target): string {
  const secret = target.password;
  if (!secret) return message;
  let clean = message;
  for (const form of new Set([secret, safeDecode(secret), encodeURIComponent(secret)])) {
    if (form) clean = clean.split(form).join('***');
  }
  return clean;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export function unavailable(target: Target, error: unknown, hint = ''): StorageUnavailableError {
  if (error instanceof StorageUnavailableError && !hint) return error;
  const reason = error instanceof StorageUnavailableError
    ? error.message
    : `${target.scheme} at ${target.where} is unreachable: ${scrub(errorMessage(error) || errorCode(error) || 'connection failed', target)}`;
  return new StorageUnavailableError(hint ? `${reason} (${hint})` : reason);
}

/** The advice start-up adds when the database cannot be reached. */
export const UNREACHABLE_HINT = 'check the host and port in STORAGE_CONNECTION and that the database server runs';

export function misconfigured(target: Target, problem: string): StorageConfigError {
  return new StorageConfigError(`STORAGE_CONNECTION ${target.scheme}://${target.where}: ${scrub(problem, target)}`);
}

/** Parses a URL-shaped connection string, or fails naming the scheme; `new URL` messages echo the input, so not those. */
export function parseConnectionUrl(scheme: string, connection: string, defaultPort: number): { url: URL; target: Target } {
  let url: URL;
  try {
    url = new URL(connection);
  } catch {
    throw new StorageConfigError(
      `STORAGE_CONNECTION ${scheme}:// is not a valid URL: use ${scheme}://user:password@host:${defaultPort}/name ` +
      '(percent-encode special characters in the user and password)',
    );
  }
  if (!url.hostname) {
    throw new StorageConfigError(`STORAGE_CONNECTION ${scheme}:// names no host: use ${scheme}://user:password@host:${defaultPort}/name`);
  }
  const password = url.password ? safeDecode(url.password) : undefined;
  return { url, target: { scheme, where: `${url.hostname}:${url.port || defaultPort}`, password } };
}

/** Runs `work`, turning network failures into StorageUnavailableError. `transient` adds driver-specific ones. */
export async function guarded<T>(target: Target, work: () => Promise<T>, transient: (error: unknown) => boolean): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof StorageUnavailableError || error instanceof StorageConfigError) throw error;
    if (isNetworkError(error) || transient(error)) throw unavailable(target, error);
    throw error;
  }
}

/** Byte-order comparison of UTF-8 strings, the order every backend lists keys in (SQLite's BINARY, PostgreSQL's "C"). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
