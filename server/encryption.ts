// Envelope encryption of secret values. Each value gets a fresh random 256-bit data key; the value is sealed with
// AES-256-GCM under that data key, and the data key is sealed (wrapped) under a key-encryption key (KEK) from the
// keyring. The owner, the key name and the version are bound in as associated data, so a sealed value copied onto
// another row, or an older copy of the same row put back under a newer version number, fails to open. The database
// only ever sees the sealed form:
//   v2.<kekId>.<wrapped data key: iv|ciphertext|tag, base64url>.<value: iv|ciphertext|tag, base64url>
//
// Rollback, and the values sealed before versions were bound (format v1, associated data without the version):
// - A v2 value opens only with the version it was sealed for. A database writer can still put back a whole older row
//   (old value with its old version number); no design can tell that from a restored backup without state outside
//   the database, but the version the API reports is then the one the value was written as, so a client that
//   remembers versions (the operator's status does) sees it go back.
// - A v1 value opens while the KEK that wraps it is in the keyring, as before, whatever version its row claims: such
//   copies (in the database or in a backup) can still be put back as current. `nosana-secrets rotate-keys` re-seals
//   every v1 row as v2, bound to the version the row has at that moment; once the old KEK is then removed from the
//   keyring, no v1 copy opens any more. So after upgrading: put a new key first, restart, rotate, drop the old key.
// Opened values are cached (bounded), found by their sealed text and used only for the very same inputs: a value read
// again costs a string comparison instead of two AES-GCM operations (on Node, creating a decipher costs far more than
// the cipher: 20 values were a third of a job's read). Opening is a pure function of the sealed text, the KEK and the
// row's owner, key name and version, so a hit returns exactly what opening would; any change of the row (a new value,
// a rewrap, a copy under another name, an old copy put back under another version) misses and is opened, or refused,
// as before. The KEK that opens every stored value is in memory anyway; the cache holds nothing it could not give.
//
// Keys are held as KeyObjects, not Buffers: on Node 24 a cipher made from a Buffer key first runs brand checks that
// cost four times the AES-GCM operation itself (measured: 19 µs against 4.3 µs per value opened). A KeyObject's bytes
// live in native memory that JavaScript cannot overwrite: they are freed with the object (a data key once the
// garbage collector takes it), not zeroed at once. The Buffers that held key bytes on the way in are zeroed.
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { ConfigError } from '../common/config.js';

const FORMAT = 'v2';
/** Sealed by releases before the version was bound in; opened (and re-sealed as v2 by rotation), never written. */
const LEGACY_FORMAT = 'v1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The IV at the start of a sealed value, in base64url characters (12 bytes make 16, no padding). */
const IV_TEXT_LENGTH = 16;
const KEK_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** The values a node's pods and an operator's bindings read over and over: as many as the old data-key cache held. */
const OPENED_CACHE_ENTRIES = 4_096;
/**
 * And at most this many characters of sealed and opened text: 2-4 MB (a character takes one byte, or two outside
 * Latin-1), about what the old cache took, so the chart's memory limit (sized per worker) still holds.
 */
const OPENED_CACHE_CHARACTERS = 2_000_000;

export interface Kek {
  id: string;
  key: Buffer;
}

interface OpenedValue {
  owner: string;
  key: string;
  version: number;
  sealed: string;
  value: string;
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

function seal(key: KeyObject, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(aad);
  return Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function open(key: KeyObject, sealed: Buffer, aad: Buffer): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new DecryptionError('sealed value is truncated');
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
  decipher.setAAD(aad);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    const head = decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES));
    const tail = decipher.final(); // checks the tag; GCM returns everything from update, so this is empty
    return tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch {
    throw new DecryptionError('sealed value does not open: it was changed, or belongs to another owner, key or version');
  }
}

/** Everything a sealed part is bound to; the legacy format had no version in it. */
function associatedData(format: string, owner: string, key: string, version: number, kekId?: string): Buffer {
  const fields = format === LEGACY_FORMAT ? `${owner}\0${key}` : `${owner}\0${key}\0${version}`;
  return Buffer.from(`nosana-secrets/${format}\0${fields}${kekId === undefined ? '' : `\0${kekId}`}`);
}

export class Envelope {
  private readonly byId: Map<string, KeyObject>;
  readonly activeKekId: string;
  /**
   * Opened values, found by the IV at the end of the sealed text (random for every seal, so a short and almost
   * always unique lookup key that hashes fast) and used only when the whole sealed text, owner, key name and version
   * are the same as when it was opened.
   */
  private readonly opened = new LRUCache<string, OpenedValue>({
    max: OPENED_CACHE_ENTRIES,
    maxSize: OPENED_CACHE_CHARACTERS,
    sizeCalculation: (entry) => entry.sealed.length + entry.value.length,
  });

  constructor(keyring: Kek[]) {
    if (keyring.length === 0) throw new ConfigError('the encryption keyring is empty');
    this.byId = new Map(keyring.map((k) => [k.id, createSecretKey(k.key)]));
    this.activeKekId = keyring[0]!.id;
  }

  /** Seals `value` for the row (owner, key) at `version`: it opens for that version only. */
  seal(owner: string, key: string, version: number, value: string): { sealed: string; kekId: string } {
    const dataKey = randomBytes(KEY_BYTES);
    try {
      const sealedValue = seal(createSecretKey(dataKey), Buffer.from(value, 'utf8'), associatedData(FORMAT, owner, key, version));
      return this.compose(owner, key, version, dataKey, sealedValue);
    } finally {
      dataKey.fill(0);
    }
  }

  open(owner: string, key: string, version: number, sealed: string): string {
    const valueStart = sealed.lastIndexOf('.') + 1;
    const iv = sealed.slice(valueStart, valueStart + IV_TEXT_LENGTH);
    const cached = this.opened.get(iv);
    if (cached && cached.sealed === sealed && cached.owner === owner && cached.key === key && cached.version === version) return cached.value;
    const { format, dataKey, value } = this.unwrap(owner, key, version, sealed);
    const opened = open(dataKey, value, associatedData(format, owner, key, version)).toString('utf8');
    this.opened.set(iv, { owner, key, version, sealed, value: opened });
    return opened;
  }

  /**
   * Re-wraps the data key under the active KEK; the value's ciphertext is kept as it is. A legacy (v1) value is
   * opened and sealed again as v2, bound to `version`, the version its row has now.
   */
  rewrap(owner: string, key: string, version: number, sealed: string): { sealed: string; kekId: string } {
    const { format, dataKey, value } = this.unwrap(owner, key, version, sealed);
    if (format === LEGACY_FORMAT) return this.seal(owner, key, version, open(dataKey, value, associatedData(format, owner, key, version)).toString('utf8'));
    const bytes = dataKey.export();
    try {
      return this.compose(owner, key, version, bytes, value);
    } finally {
      bytes.fill(0);
    }
  }

  private compose(owner: string, key: string, version: number, dataKey: Buffer, sealedValue: Buffer): { sealed: string; kekId: string } {
    const kekId = this.activeKekId;
    const wrapped = seal(this.byId.get(kekId)!, dataKey, associatedData(FORMAT, owner, key, version, kekId));
    return { sealed: [FORMAT, kekId, wrapped.toString('base64url'), sealedValue.toString('base64url')].join('.'), kekId };
  }

  private unwrap(owner: string, key: string, version: number, sealed: string): { format: string; dataKey: KeyObject; value: Buffer } {
    // format.kekId.wrapped.value, found by position: splitting would copy every part out of the string.
    const kekStart = sealed.indexOf('.') + 1;
    const wrappedStart = sealed.indexOf('.', kekStart) + 1;
    const valueStart = sealed.indexOf('.', wrappedStart) + 1;
    const format = sealed.slice(0, kekStart - 1);
    if (kekStart === 0 || wrappedStart === 0 || valueStart === 0 || sealed.includes('.', valueStart) || (format !== FORMAT && format !== LEGACY_FORMAT)) {
      throw new DecryptionError('sealed value has an unknown format');
    }
    const kekId = sealed.slice(kekStart, wrappedStart - 1);
    const kek = this.byId.get(kekId);
    if (!kek) throw new DecryptionError(`sealed value is wrapped by key "${kekId}", which is not in the keyring`);
    const value = Buffer.from(sealed.slice(valueStart), 'base64url');
    const unwrapped = open(kek, Buffer.from(sealed.slice(wrappedStart, valueStart - 1), 'base64url'), associatedData(format, owner, key, version, kekId));
    try {
      if (unwrapped.length !== KEY_BYTES) throw new DecryptionError('sealed value has a data key of the wrong size');
      return { format, dataKey: createSecretKey(unwrapped), value };
    } finally {
      unwrapped.fill(0);
    }
  }
}
