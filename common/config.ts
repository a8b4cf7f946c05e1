// Reading settings from environment variables, with errors that name the variable and the fix.
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Env = Record<string, string | undefined>;

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
