// Re-wraps every data key with the active (first) key-encryption key. Run it after putting a new key first in
// ENCRYPTION_KEYS (keeping the old one after it) and restarting the servers; servers keep serving throughout, since
// they can open values under either key. When it reports 0 left, the old key can be removed.
import { createLogger } from '../common/log.js';
import { loadServerConfig } from '../server/config.js';
import { Envelope } from '../server/encryption.js';
import { openStorage } from '../server/storage/open.js';

const BATCH = 500;

export async function rotateKeys(): Promise<void> {
  const log = createLogger('rotate-keys');
  const config = loadServerConfig(process.env, log);
  const envelope = new Envelope(config.keyring);
  const storage = await openStorage(config.storageConnection);
  await storage.init();
  let rewrapped = 0;
  let skipped = 0;
  try {
    for (;;) {
      const batch = await storage.listSecretsNotWrappedBy(envelope.activeKekId, BATCH);
      if (batch.length === 0) break;
      let progressed = false;
      for (const record of batch) {
        const next = envelope.rewrap(record.owner, record.key, record.sealed);
        // A concurrent write already sealed the row under the active key: nothing to do for it.
        if (await storage.rewrapSecret(record.owner, record.key, record.sealed, next.sealed, next.kekId)) {
          rewrapped++;
          progressed = true;
        } else {
          skipped++;
        }
      }
      if (!progressed) break;
    }
  } finally {
    await storage.close();
  }
  log.info({ rewrapped, skipped, activeKey: envelope.activeKekId }, 'key rotation done');
  process.stdout.write(`re-wrapped ${rewrapped} data keys with key ${envelope.activeKekId}\n`);
}
