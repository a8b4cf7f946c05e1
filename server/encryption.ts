// Envelope encryption of secret values. Each value gets a fresh random 256-bit data key; the value is sealed with
// AES-256-GCM under that data key, and the data key is sealed (wrapped) under a key-encryption key (KEK) from the
// keyring. The owner and the key name are bound in as associated data, so a sealed value copied onto another row
// fails to open. The database only ever sees the sealed form:
//   v1.<kekId>.<wrapped data key: iv|ciphertext|tag, base64url>.<value: iv|ciphertext|tag, base64url>
// Unwrapped data keys are cached (bounded, zeroed on eviction), so a value read again is opened with one AES-GCM
// operation instead of two. The KEK that opens them all is in memory anyway; the cache holds nothing it could not.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../common/config.js';

const FORMAT = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEK_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** About 2.3 MB of heap when full (measured): the keys a node's pods read over and over, within the server's memory target. */
const DATA_KEY_CACHE_ENTRIES = 4_096;

export interface Kek {
  id: string;
  key: Buffer;
}

export class DecryptionError extends Error {
  override name = 'DecryptionError';
}

/**
 * Parses a keyring: comma- or newline-separated `id:base64key` entries, the first being the active key that wraps
 * new values; the others still open values wrapped before a rotation.
 */
export function parseKeyring(text: string, source: string): Kek[] {
  const entries = text.split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('#'));
  if (entries.length === 0) throw new ConfigError(`${source} holds no key: expected lines of id:base64-of-32-bytes`);
  const keys = entries.map((entry) => {
    const colon = entry.indexOf(':');
    const id = colon > 0 ? entry.slice(0, colon) : '';
    const key = Buffer.from(entry.slice(colon + 1), 'base64');
    if (!KEK_ID_PATTERN.test(id) || key.length !== KEY_BYTES) {
      throw new ConfigError(
        `${source} has an entry that is not id:base64-of-32-bytes (id: letters, digits, "_", "-"); ` +
        'make one with: echo "k$(date +%Y%m%d):$(openssl rand -base64 32)"',
      );
    }
    return { id, key };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new ConfigError(`${source} names a key id twice`);
  return keys;
}

export function newKeyringEntry(): string {
  const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  return `k${day}${randomBytes(3).toString('hex')}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

function seal(key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function open(key: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new DecryptionError('sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new DecryptionError('sealed value does not open: it was changed, or belongs to another owner or key');
  }
}

function associatedData(owner: string, key: string, kekId?: string): Buffer {
  return Buffer.from(`nosana-secrets/${FORMAT}\0${owner}\0${key}${kekId === undefined ? '' : `\0${kekId}`}`);
}

export class Envelope {
  private readonly byId: Map<string, Buffer>;
  readonly activeKekId: string;
  /** Unwrapped data keys by every input of their unwrap (owner, key name, KEK id, wrapped key): a hit is exactly what unwrapping would return. */
  private readonly dataKeys = new LRUCache<string, Buffer>({ max: DATA_KEY_CACHE_ENTRIES, dispose: (dataKey) => dataKey.fill(0) });

  constructor(keyring: Kek[]) {
    if (keyring.length === 0) throw new ConfigError('the encryption keyring is empty');
    this.byId = new Map(keyring.map((k) => [k.id, k.key]));
    this.activeKekId = keyring[0]!.id;
  }

  seal(owner: string, key: string, value: string): { sealed: string; kekId: string } {
    const dataKey = randomBytes(KEY_BYTES);
    try {
      return this.compose(owner, key, dataKey, seal(dataKey, Buffer.from(value, 'utf8'), associatedData(owner, key)));
    } finally {
      dataKey.fill(0);
    }
  }

  open(owner: string, key: string, sealed: string): string {
    const { dataKey, value } = this.unwrap(owner, key, sealed);
    return open(dataKey, value, associatedData(owner, key)).toString('utf8');
  }

  /** Re-wraps the data key under the active KEK; the value's ciphertext is kept as it is. */
  rewrap(owner: string, key: string, sealed: string): { sealed: string; kekId: string } {
    const { dataKey, value } = this.unwrap(owner, key, sealed);
    return this.compose(owner, key, dataKey, value);
  }

  private compose(owner: string, key: string, dataKey: Buffer, sealedValue: Buffer): { sealed: string; kekId: string } {
    const kekId = this.activeKekId;
    const wrapped = seal(this.byId.get(kekId)!, dataKey, associatedData(owner, key, kekId));
    return { sealed: [FORMAT, kekId, wrapped.toString('base64url'), sealedValue.toString('base64url')].join('.'), kekId };
  }

  private unwrap(owner: string, key: string, sealed: string): { dataKey: Buffer; value: Buffer } {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== FORMAT) throw new DecryptionError('sealed value has an unknown format');
    const kekId = parts[1]!;
    const kek = this.byId.get(kekId);
    if (!kek) throw new DecryptionError(`sealed value is wrapped by key "${kekId}", which is not in the keyring`);
    const value = Buffer.from(parts[3]!, 'base64url');
    const cacheKey = `${owner}\0${key}\0${kekId}\0${parts[2]}`;
    const cached = this.dataKeys.get(cacheKey);
    if (cached) return { dataKey: cached, value };
    const unwrapped = open(kek, Buffer.from(parts[2]!, 'base64url'), associatedData(owner, key, kekId));
    if (unwrapped.length !== KEY_BYTES) throw new DecryptionError('sealed value has a data key of the wrong size');
    // A copy of its own, outside Node's shared buffer pool: a cached slice would pin a whole pool page.
    const dataKey = Buffer.alloc(KEY_BYTES);
    unwrapped.copy(dataKey);
    unwrapped.fill(0);
    this.dataKeys.set(cacheKey, dataKey);
    return { dataKey, value };
  }
}
