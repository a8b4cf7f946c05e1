// Reading settings from environment variables, with errors that name the variable and the fix.
import { accessSync, constants } from 'node:fs';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

/** The CA file setting of every client of the secrets server (CLI, operator, injector). */
export const CA_FILE_VARIABLE = 'NOSANA_SECRETS_CA_FILE';

export function envString(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

export function envOptional(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function envInt(env: Env, name: string, fallback: number, range: { min: number; max: number }): number {
  const raw = envOptional(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < range.min || value > range.max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: set it to a whole number from ${range.min} to ${range.max}`);
  }
  return value;
}

/**
 * NOSANA_SECRETS_CA_FILE (or `flag`): a PEM file of the CA that signed the secrets server's certificate. Checked at
 * start-up, so a wrong path stops the process with the fix instead of failing every later request.
 */
export function envCaFile(env: Env, flag?: string): string | undefined {
  const file = flag ?? envOptional(env, CA_FILE_VARIABLE);
  if (file === undefined) return undefined;
  try {
    accessSync(file, constants.R_OK);
  } catch {
    throw new ConfigError(`${CA_FILE_VARIABLE}=${JSON.stringify(file)} cannot be read: point it at the PEM file of the CA that signed the server's certificate (ca.crt), or unset it to trust the system CAs`);
  }
  return file;
}

/** Returns `value` when it is an http(s) URL; otherwise a ConfigError naming `what` and showing `example`. */
export function requireHttpUrl(value: string, what: string, example: string): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new ConfigError(`${what} ${JSON.stringify(value)} is not an http(s) URL: set it like ${example}`);
  }
  return value;
}
