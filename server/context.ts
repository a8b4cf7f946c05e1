// What every route room needs, built once in main.ts and passed in: no module-level singletons, so tests can run
// several servers in one process.
import type { Logger } from '../common/log.js';
import type { ServerConfig } from './config.js';
import type { Envelope } from './encryption.js';
import type { GrantResolver } from './grants/resolver.js';
import type { LoginLimits } from './limits.js';
import type { ServerMetrics } from './metrics.js';
import type { Storage } from './storage/contract.js';
import type { Tokens } from './tokens.js';

export interface ServerContext {
  config: ServerConfig;
  storage: Storage;
  envelope: Envelope;
  tokens: Tokens;
  grants: GrantResolver;
  /** Login and token-exchange rates per source and per address. */
  loginLimits: LoginLimits;
  metrics: ServerMetrics;
  log: Logger;
  /** Structured audit events: who did what to which key, and the outcome. Never a value. */
  audit: Logger;
  /** Runs a storage operation, recording its latency and turning connection failures into 503s. */
  timed<T>(operation: string, run: () => Promise<T>): Promise<T>;
}
