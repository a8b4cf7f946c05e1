// `nosana-secrets rotate-keys`: run after putting a new key first in ENCRYPTION_KEYS (the old one kept after it)
// and restarting the servers; see server/key-rotation.ts.
import { createLogger } from '../common/log.js';
import { Progress } from '../common/progress.js';
import { loadServerConfig } from '../server/config.js';
import { Envelope } from '../server/encryption.js';
import { rotateDataKeys } from '../server/key-rotation.js';
import { openStorage } from '../server/storage/open.js';

export async function rotateKeys(): Promise<void> {
  const log = createLogger('rotate-keys');
  const config = loadServerConfig(process.env, log);
  const envelope = new Envelope(config.keyring);
  const storage = await openStorage(config.storageConnection);
  await storage.init();
  try {
    const progress = new Progress(`re-wrapping data keys with key ${envelope.activeKekId}`, { unit: 'data keys' });
    const { rewrapped, skipped } = await rotateDataKeys(storage, envelope, (counts) => progress.update(counts.rewrapped));
    progress.done(rewrapped);
    const left = (await storage.listSecretsNotWrappedBy(envelope.activeKekId, 1)).length;
    log.info({ rewrapped, skipped, activeKey: envelope.activeKekId }, 'key rotation done');
    process.stdout.write(`re-wrapped ${rewrapped} data keys with key ${envelope.activeKekId}; ` +
      (left === 0 ? 'none left under older keys: they can be removed from ENCRYPTION_KEYS\n' : 'some rows are still under older keys: run it again\n'));
  } finally {
    await storage.close();
  }
}
