// The embedded default, in a fresh temp dir per suite.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage } from '../../server/storage/sqlite.js';
import { storageConformance } from './conformance.js';
import { throughTheApi } from './through-the-api.js';

async function provision() {
  const dir = mkdtempSync(join(tmpdir(), 'nss-sqlite-'));
  return { connection: `sqlite://${join(dir, 'db.sqlite')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

storageConformance({
  name: 'sqlite',
  provision,
  open: (connection) => new SqliteStorage(connection.slice('sqlite://'.length)),
  networked: false,
  purgeCounts: true,
  atomicBatches: true,
  atomicUpdates: true,
});

throughTheApi({ name: 'sqlite', provision, networked: false });
