// Combines the enabled grant sources into one answer for a job login and for every job-token request.
import { conflict, forbidden } from '../errors.js';
import type { GrantSource, JobAccess } from './source.js';

export class GrantResolver {
  constructor(private readonly sources: GrantSource[]) {}

  /**
   * The one access `reader` has for `job`, or a 403 (none) / 409 (grants from several owners and no `owner` named).
   * With `owner`, only that owner's grants count: a job token always names it, so another owner granting the same
   * job id to the same reader later cannot take a working token away.
   */
  async resolve(job: string, reader: string, owner?: string): Promise<JobAccess> {
    // Every source is asked; one that refuses or fails (the Nosana network unreachable) does not take away what
    // another grants. Only when none grants is the first explained refusal the answer.
    const answers = await Promise.allSettled(this.sources.map((s) => s.accessFor(job, reader)));
    const found = answers.flatMap((answer) => (answer.status === 'fulfilled' ? answer.value : []))
      .filter((access) => owner === undefined || access.owner === owner);
    if (found.length === 0) {
      const refusal = answers.find((answer) => answer.status === 'rejected');
      if (refusal) throw refusal.reason;
      throw forbidden(`address ${reader} has no grant for job ${job}${owner === undefined ? '' : ` from owner ${owner}`}`);
    }
    const owners = new Set(found.map((a) => a.owner));
    if (owners.size > 1) {
      throw conflict(`job ${job} is granted to ${reader} by several owners (${[...owners].join(', ')}): log in naming the owner (owner) whose secrets the job reads`);
    }
    // One owner through several sources: the union of the keys.
    const keys = [...new Set(found.flatMap((a) => a.keys))].sort();
    return { owner: found[0]!.owner, keys, source: [...new Set(found.map((a) => a.source))].join(',') };
  }
}
