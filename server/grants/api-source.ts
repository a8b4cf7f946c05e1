// Grants that owners register through the API (`PUT /v1/grants/:job`), kept in storage.
import type { Storage } from '../storage/contract.js';
import type { GrantSource, JobAccess } from './source.js';

export class ApiGrantSource implements GrantSource {
  readonly name = 'api';
  constructor(private readonly storage: Storage) {}

  async accessFor(job: string, reader: string): Promise<JobAccess[]> {
    const grants = await this.storage.grantsForJob(job);
    return grants
      .filter((grant) => grant.readers.includes(reader))
      .map((grant) => ({ owner: grant.owner, keys: grant.keys, source: this.name }));
  }
}
