// Redis: a fresh key prefix per suite on the server test/env runs (NS_TEST_REDIS_URL).
import { RedisStorage } from '../../server/storage/redis.js';
import { provisionDatabase } from '../helpers/servers.js';
import { storageConformance } from './conformance.js';
import { throughTheApi } from './through-the-api.js';

const provision = () => provisionDatabase('redis');

storageConformance({
  name: 'redis',
  provision,
  open: (connection) => new RedisStorage(connection, { timeoutMs: 2000 }),
  networked: true,
  // Redis drops used signatures at their expiry by itself, so a purge never finds any.
  purgeCounts: false,
  atomicBatches: true,
  atomicUpdates: true,
});

throughTheApi({ name: 'redis', provision, networked: true });
