// The MongoDB protocol on FerretDB: a fresh database per suite on the server test/env runs (NS_TEST_MONGODB_URL).
import { MongoStorage } from '../../server/storage/mongodb.js';
import { provisionDatabase } from '../helpers/servers.js';
import { storageConformance } from './conformance.js';
import { throughTheApi } from './through-the-api.js';

const provision = () => provisionDatabase('mongodb');

storageConformance({
  name: 'mongodb',
  provision,
  open: (connection) => new MongoStorage(connection, { timeoutMs: 2000 }),
  networked: true,
  purgeCounts: true,
  // FerretDB has no transactions: a batch is written key by key (see server/storage/mongodb.ts).
  atomicBatches: false,
  // FerretDB 1.x applies updates as read-then-write (see server/storage/mongodb.ts); MongoDB itself would pass.
  atomicUpdates: false,
});

throughTheApi({ name: 'mongodb', provision, networked: true, quickFailureQuery: 'serverSelectionTimeoutMS=1500' });
