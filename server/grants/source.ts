// The grant-source contract: where the answer to "may this address read secrets for this job, and which?" comes
// from. Grants registered through the API are one source; the Nosana network (job definitions on chain and IPFS)
// is another. The resolver asks every enabled source.

export interface JobAccess {
  /** The address whose secrets are read. */
  owner: string;
  /** The keys of that owner that may be read. */
  keys: string[];
  /** Which source granted it, for the audit log. */
  source: string;
}

export interface GrantSource {
  readonly name: string;
  /**
   * Every access `reader` has for `job`: empty when none. A source throws an HttpError for a refusal it can explain
   * better (unknown job, finished job, the network unreachable).
   */
  accessFor(job: string, reader: string): Promise<JobAccess[]>;
}
