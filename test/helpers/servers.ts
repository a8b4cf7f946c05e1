// Where the real database servers of the tests are, and a fresh, private database on one of them per suite, so test
// files running side by side never see each other's rows.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import mysql from 'mysql2/promise';
import pg from 'pg';

export type ServerName = 'postgres' | 'mysql' | 'redis' | 'mongodb';

const VARIABLES: Record<ServerName, string> = {
  postgres: 'NS_TEST_POSTGRES_URL',
  mysql: 'NS_TEST_MYSQL_URL',
  redis: 'NS_TEST_REDIS_URL',
  mongodb: 'NS_TEST_MONGODB_URL',
};

const started = new Map<ServerName, Promise<string>>();

/**
 * The URL of a running server of that kind: the NS_TEST_* variable that `bash test/env up` exports, or else, where a
 * Docker engine answers, a container started once per run. Throws with the fix when neither is there: a missing
 * server is a failure, never a skip.
 */
export async function requireServerUrl(name: ServerName): Promise<string> {
  const variable = VARIABLES[name];
  const fromEnv = process.env[variable];
  if (fromEnv) return fromEnv;
  let url = started.get(name);
  if (!url) {
    url = startContainer(name);
    started.set(name, url);
  }
  return url;
}

/**
 * The Docker branch, for laptops. It cannot run on the CI machine (no Docker engine there), so it stays small:
 * images and settings mirror what test/env starts, and `withReuse()` lets every test worker share one container.
 */
async function startContainer(name: ServerName): Promise<string> {
  const { GenericContainer, Wait, getContainerRuntimeClient } = await import('testcontainers');
  try {
    await getContainerRuntimeClient();
  } catch {
    throw new Error(`${VARIABLES[name]} is not set and no Docker engine answers: run \`bash test/env up\` first (or use \`bash test/run\`)`);
  }
  interface Spec { image: string; port: number; ready: RegExp; times: number; env: Record<string, string>; url(host: string, port: number): string }
  const specs: Spec = ({
    postgres: { image: 'postgres:16', port: 5432, ready: /database system is ready to accept connections/, times: 2,
      env: { POSTGRES_USER: 'nosana', POSTGRES_PASSWORD: 'nosana', POSTGRES_DB: 'nosana_test' },
      url: (host: string, port: number) => `postgresql://nosana:nosana@${host}:${port}/nosana_test` },
    mysql: { image: 'mariadb:11', port: 3306, ready: /ready for connections/, times: 2,
      env: { MARIADB_ROOT_PASSWORD: 'nosana', MARIADB_DATABASE: 'nosana_test' },
      url: (host: string, port: number) => `mysql://root:nosana@${host}:${port}/nosana_test` },
    redis: { image: 'redis:7', port: 6379, ready: /Ready to accept connections/, times: 1, env: {},
      url: (host: string, port: number) => `redis://${host}:${port}` },
    mongodb: { image: 'mongo:7', port: 27017, ready: /Waiting for connections/, times: 1, env: {},
      url: (host: string, port: number) => `mongodb://${host}:${port}/nosana_test?directConnection=true` },
  } satisfies Record<ServerName, Spec>)[name];
  const container = await new GenericContainer(specs.image)
    .withEnvironment(specs.env)
    .withExposedPorts(specs.port)
    .withWaitStrategy(Wait.forLogMessage(specs.ready, specs.times))
    .withReuse()
    .start();
  return specs.url(container.getHost(), container.getMappedPort(specs.port));
}

export interface Provisioned {
  /** A STORAGE_CONNECTION for a database (or redis key prefix) no one else uses. */
  connection: string;
  /** Removes it and everything in it. */
  drop(): Promise<void>;
}

/** A new, empty database on the named server, e.g. `nosana_t_3f9a...` (test/env grants its user `nosana_%`). */
export async function provisionDatabase(name: ServerName): Promise<Provisioned> {
  const server = await requireServerUrl(name);
  const unique = `nosana_t_${randomBytes(6).toString('hex')}`;
  switch (name) {
    case 'postgres': {
      await withPg(server, (client) => client.query(`CREATE DATABASE ${unique}`));
      return {
        connection: withPath(server, unique),
        drop: async () => { await withPg(server, (client) => client.query(`DROP DATABASE IF EXISTS ${unique} WITH (FORCE)`)); },
      };
    }
    case 'mysql': {
      await withMysql(server, (connection) => connection.query(`CREATE DATABASE ${unique}`));
      return {
        connection: withPath(server, unique),
        drop: async () => { await withMysql(server, (connection) => connection.query(`DROP DATABASE IF EXISTS ${unique}`)); },
      };
    }
    case 'redis': {
      const url = new URL(server);
      url.searchParams.set('prefix', `${unique}:`);
      return { connection: url.toString(), drop: () => deleteRedisPrefix(server, `${unique}:`) };
    }
    case 'mongodb': {
      return {
        connection: withPath(server, unique),
        drop: async () => {
          const client = new MongoClient(server, { serverSelectionTimeoutMS: 5000 });
          try {
            await client.db(unique).dropDatabase();
          } finally {
            await client.close();
          }
        },
      };
    }
  }
}

/** The same connection string with another database name (keeps user, hosts and query). */
function withPath(connection: string, database: string): string {
  return connection.replace(/^([a-z+]+:\/\/[^/?]*)(\/[^?]*)?/i, `$1/${database}`);
}

async function withPg<T>(server: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function withMysql<T>(server: string, work: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  const connection = await mysql.createConnection({ uri: server, connectTimeout: 5000 });
  try {
    return await work(connection);
  } finally {
    await connection.end();
  }
}

async function deleteRedisPrefix(server: string, prefix: string): Promise<void> {
  const redis = new Redis(server, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 500 })) {
      if ((keys as string[]).length > 0) await redis.del(...(keys as string[]));
    }
  } finally {
    redis.disconnect();
  }
}
