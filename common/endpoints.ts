// Which secrets servers a part may sign in to. A signed login is a credential for its whole time window, so the
// injector and the operator send one only to a server on their allow-list: whoever may name an endpoint (a
// SecretProviderClass, a NosanaSecretBinding) chooses from that list and nothing else. One implementation for both.
import { ConfigError, requireHttpUrl } from './config.js';

/** Endpoints compare as written, less surrounding blanks and trailing slashes: nothing looser, so nothing slips by. */
export function normalizeEndpoint(endpoint: string): string {
  return endpoint.trim().replace(/\/+$/, '');
}

/** The requested endpoint is not on the allow-list; the message names it, the list and the fix. */
export class EndpointNotAllowedError extends Error {
  override name = 'EndpointNotAllowedError';
}

export class AllowedEndpoints {
  /** Normalized; the first is the default, used when nothing names an endpoint. */
  readonly list: readonly string[];

  /**
   * @param endpoints the default first, then the others that may be named
   * @param howToAllow what a refusal tells the user to do to allow an endpoint (the setting that lists them)
   */
  constructor(endpoints: readonly string[], private readonly howToAllow: string) {
    this.list = [...new Set(endpoints.map(normalizeEndpoint).filter(Boolean))];
    if (this.list.length === 0) throw new ConfigError(`no secrets server is allowed: ${howToAllow}`);
  }

  get default(): string {
    return this.list[0]!;
  }

  /** The endpoint to sign in to: `requested` when allowed, the default when none is requested. */
  choose(requested: string | undefined): string {
    if (requested === undefined || requested.trim() === '') return this.default;
    const endpoint = normalizeEndpoint(requested);
    if (!this.list.includes(endpoint)) {
      throw new EndpointNotAllowedError(
        `endpoint ${JSON.stringify(endpoint.slice(0, 200))} is not one of the allowed secrets servers (${this.list.join(', ')}): ${this.howToAllow}`);
    }
    return endpoint;
  }
}

/** A comma-separated list of http(s) URLs from a setting; a ConfigError names the setting and a bad entry. */
export function parseEndpointList(text: string, setting: string, example: string): string[] {
  const endpoints = text.split(',').map(normalizeEndpoint).filter(Boolean);
  for (const endpoint of endpoints) requireHttpUrl(endpoint, setting, example);
  return endpoints;
}
