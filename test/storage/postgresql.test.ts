// PostgreSQL: a fresh database per suite on the server test/env runs (NS_TEST_POSTGRES_URL).
import { PostgresStorage } from '../../server/storage/postgresql.js';
import { provisionDatabase } from '../helpers/servers.js';
import { storageConformance } from './conformance.js';
import { throughTheApi } from './through-the-api.js';

const provision = () => provisionDatabase('postgres');

storageConformance({
  name: 'postgresql',
  provision,
  open: (connection) => new PostgresStorage(connection, { timeoutMs: 2000 }),
  networked: true,
  purgeCounts: true,
  atomicBatches: true,
  atomicUpdates: true,
});

throughTheApi({ name: 'postgresql', provision, networked: true });
