// A TTL cache in front of a network read, shared by the chain and IPFS readers.
import { LRUCache } from 'lru-cache';

const CACHE_ENTRIES = 10_000;

export type Cached<V> = (key: string) => Promise<V>;

/**
 * `load` behind a TTL cache that also shares one in-flight load among concurrent callers (a login and the requests
 * right after it ask about the same job). A failed load is not cached. ttl 0 turns caching off.
 */
export function cached<V extends object>(ttlSeconds: number, load: (key: string) => Promise<V>): Cached<V> {
  if (ttlSeconds === 0) return load;
  const cache = new LRUCache<string, V>({
    max: CACHE_ENTRIES,
    ttl: ttlSeconds * 1000,
    fetchMethod: (key) => load(key),
  });
  return async (key) => (await cache.fetch(key))!; // fetchMethod always resolves to a value or rejects
}
