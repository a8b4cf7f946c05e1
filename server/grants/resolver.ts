// Combines the enabled grant sources into one answer for a job login and for every job-token request.
import { conflict, forbidden } from '../errors.js';
import type { GrantSource, JobAccess } from './source.js';

export class GrantResolver {
  constructor(private readonly sources: GrantSource[]) {}

  /** The one access `reader` has for `job`, or a 403 (none) / 409 (grants from several owners). */
  async resolve(job: string, reader: string): Promise<JobAccess> {
    const found = (await Promise.all(this.sources.map((s) => s.accessFor(job, reader)))).flat();
    if (found.length === 0) throw forbidden(`address ${reader} has no grant for job ${job}`);
    const owners = new Set(found.map((a) => a.owner));
    if (owners.size > 1) {
      throw conflict(`job ${job} is granted to ${reader} by several owners (${[...owners].join(', ')}); ask all but one to revoke it`);
    }
    // One owner through several sources: the union of the keys.
    const keys = [...new Set(found.flatMap((a) => a.keys))].sort();
    return { owner: found[0]!.owner, keys, source: [...new Set(found.map((a) => a.source))].join(',') };
  }
}
