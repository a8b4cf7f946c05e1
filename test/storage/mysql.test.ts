// MySQL protocol on MariaDB: a fresh database per suite on the server test/env runs (NS_TEST_MYSQL_URL).
import { MysqlStorage } from '../../server/storage/mysql.js';
import { provisionDatabase } from '../helpers/servers.js';
import { storageConformance } from './conformance.js';
import { throughTheApi } from './through-the-api.js';

const provision = () => provisionDatabase('mysql');

storageConformance({
  name: 'mysql',
  provision,
  open: (connection) => new MysqlStorage(connection, { timeoutMs: 2000 }),
  networked: true,
  purgeCounts: true,
  atomicBatches: true,
  atomicUpdates: true,
});

throughTheApi({ name: 'mysql', provision, networked: true });
