// Chooses the backend from STORAGE_CONNECTION's URL scheme. Messages name the scheme and the problem, and never the
// password, since start-up errors end up in logs. Only the chosen backend's module (and its driver) is loaded: the
// others would cost start-up time and resident memory for nothing.
import { resolve } from 'node:path';
import { StorageConfigError, type Storage } from './contract.js';

export const DEFAULT_STORAGE_CONNECTION = 'sqlite://db.sqlite';
export const SUPPORTED_SCHEMES = ['sqlite', 'mongodb', 'postgresql', 'mysql', 'redis'] as const;

/** The connection string with any password replaced, safe to log. */
export function redactConnection(connection: string): string {
  return connection.replace(/^([a-z+]+:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

export async function openStorage(connection: string): Promise<Storage> {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(connection);
  if (!match) {
    throw new StorageConfigError(
      `STORAGE_CONNECTION=${JSON.stringify(redactConnection(connection))} is not a URL: use one of ` +
      SUPPORTED_SCHEMES.map((s) => `${s}://...`).join(', ') + ` (default ${DEFAULT_STORAGE_CONNECTION})`,
    );
  }
  const scheme = match[1]!.toLowerCase();
  const rest = match[2]!;
  switch (scheme) {
    case 'sqlite': {
      if (rest === '') throw new StorageConfigError('STORAGE_CONNECTION sqlite:// needs a file path, e.g. sqlite://db.sqlite');
      const { SqliteStorage } = await import('./sqlite.js');
      return new SqliteStorage(rest === ':memory:' ? rest : resolve(rest));
    }
    case 'postgresql':
    case 'postgres':
      return new (await import('./postgresql.js')).PostgresStorage(connection);
    case 'mysql':
      return new (await import('./mysql.js')).MysqlStorage(connection);
    case 'redis':
    case 'rediss':
      return new (await import('./redis.js')).RedisStorage(connection);
    case 'mongodb':
    case 'mongodb+srv':
      return new (await import('./mongodb.js')).MongoStorage(connection);
    default:
      throw new StorageConfigError(
        `STORAGE_CONNECTION scheme "${scheme}" is not supported: use one of ${SUPPORTED_SCHEMES.join(', ')}`,
      );
  }
}
