// Re-wraps every data key with the active (first) key-encryption key. Servers keep serving meanwhile: they open
// values under any key of their keyring, and a row written concurrently is simply left as the writer sealed it
// (compare-and-set). When nothing is left under an old key, that key can be removed from the keyring. Values sealed
// before versions were bound (v1) are sealed again as v2 here, bound to their row's version (see encryption.ts).
import type { Envelope } from './encryption.js';
import type { Storage } from './storage/contract.js';

const BATCH = 500;

export interface RotationCounts { rewrapped: number; skipped: number }

/** `onBatch` hears the running counts after every batch (the CLI shows them as progress). */
export async function rotateDataKeys(
  storage: Storage, envelope: Envelope, onBatch: (counts: RotationCounts) => void = () => {},
): Promise<RotationCounts> {
  let rewrapped = 0;
  let skipped = 0;
  for (;;) {
    const batch = await storage.listSecretsNotWrappedBy(envelope.activeKekId, BATCH);
    let progressed = false;
    for (const record of batch) {
      const next = envelope.rewrap(record.owner, record.key, record.version, record.sealed);
      if (await storage.rewrapSecret(record.owner, record.key, record.sealed, next.sealed, next.kekId)) {
        rewrapped++;
        progressed = true;
      } else {
        skipped++;
      }
    }
    onBatch({ rewrapped, skipped });
    // No progress means every row left was rewritten under us by writers still using an old key: stop, report.
    if (batch.length === 0 || !progressed) return { rewrapped, skipped };
  }
}
