// What one client may cost the server: the body size of each route and the rate of logins. Login limits are fixed
// windows counted per source IP and per address, in bounded memory: each counter lives in an LRU of at most
// MAX_TRACKED entries, so a flood from many sources evicts old counters instead of growing the heap; the worst an
// attacker gains from that is a fresh window for a source it stopped using.
import { isIPv6 } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { LRUCache } from 'lru-cache';
import { KEY_MAX_LENGTH } from '../common/names.js';
import { tooManyRequests } from './errors.js';

/**
 * Every route's body limit unless it asks for more: a login, a token exchange or a delete is a few hundred bytes.
 * Routes that take more check the caller's token before reading the body (see largeBody in auth.ts), so a client
 * without a token can make the server hold at most this much per connection.
 */
export const DEFAULT_BODY_LIMIT = 4096;
/** Grants and batch reads: up to 1,000 keys of the longest kind and 100 readers. */
export const NAMES_BODY_LIMIT = 512 * 1024;
/** Keys in one POST /secrets batch. */
export const BATCH_MAX_KEYS = 1000;
/** The most bytes JSON may spend on one byte of a value: a control character becomes \u00XX. */
const JSON_ESCAPE_FACTOR = 6;

/** PUT /v1/secrets/*: any value of up to MAX_VALUE_BYTES, however it is escaped, fits. */
export function valueBodyLimit(maxValueBytes: number): number {
  return JSON_ESCAPE_FACTOR * maxValueBytes + 1024;
}

/** POST /secrets: values of one largest value's worth in total, plus a full batch of the longest key names. */
export function batchBodyLimit(maxValueBytes: number): number {
  return valueBodyLimit(maxValueBytes) + BATCH_MAX_KEYS * (KEY_MAX_LENGTH + 8);
}

const MAX_TRACKED = 50_000;

interface Window { count: number; resetsAt: number }

export class RateLimiter {
  private readonly windows = new LRUCache<string, Window>({ max: MAX_TRACKED });

  /** `limit` requests per `windowSeconds` for each key; a limit of 0 turns the limiter off. */
  constructor(readonly limit: number, readonly windowSeconds: number, private readonly what: string) {}

  /** Counts one request for `key`; throws a 429 naming when to retry once the key has used its window. */
  take(key: string, now = Date.now()): void {
    if (this.limit === 0) return;
    let window = this.windows.get(key);
    if (!window || window.resetsAt <= now) {
      window = { count: 0, resetsAt: now + this.windowSeconds * 1000 };
      this.windows.set(key, window);
    }
    window.count++;
    if (window.count > this.limit) {
      const retryAfter = Math.max(1, Math.ceil((window.resetsAt - now) / 1000));
      throw tooManyRequests(
        `too many logins ${this.what} ${key}: at most ${this.limit} per ${this.windowSeconds} s; retry after ${retryAfter} s`,
        retryAfter,
      );
    }
  }
}

/**
 * The source a request is counted under: the IPv4 address, or the /64 network of an IPv6 one (a single host is
 * usually given a whole /64, so counting single IPv6 addresses would limit nothing).
 */
export function sourceOf(ip: string): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::')
    ? [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups]
    : headGroups;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** The two limits every login and token exchange passes: per source (before the body is read) and per address. */
export interface LoginLimits {
  perSource: RateLimiter;
  perAddress: RateLimiter;
}

export function createLoginLimits(config: { perSource: number; perAddress: number; windowSeconds: number }): LoginLimits {
  return {
    perSource: new RateLimiter(config.perSource, config.windowSeconds, 'from'),
    perAddress: new RateLimiter(config.perAddress, config.windowSeconds, 'by address'),
  };
}

/** An onRequest hook that counts a login against its source before its body is read. */
export function limitBySource(limits: LoginLimits) {
  return async (request: FastifyRequest): Promise<void> => limits.perSource.take(sourceOf(request.ip));
}
