// The grant source of the Nosana network: who may read what is decided by the job itself, on chain and on IPFS.
//
// - Running job (state Queued or Running): the reader must be the node of one of the job's run accounts; it reads
//   the keys the job definition (at ipfsJob) lists, of the job's project.
// - Finished job (Done or Stopped): the reader must be the job's project; it reads the keys the job result (at
//   ipfsResult) lists, of the job's node. This is how a node hands a result secret (`<job>/result`) to the project;
//   the node's own access ends with the job.
// A job name that is not a Solana address is not a Nosana job: this source has nothing to say about it.
import type { Registry } from 'prom-client';
import type { Logger } from '../../../common/log.js';
import { decodeAddress } from '../../../common/names.js';
import { forbidden, HttpError, notFound } from '../../errors.js';
import type { GrantSource, JobAccess } from '../source.js';
import type { NosanaConfig } from './config.js';
import { cidFromDigest, IpfsGateway } from './ipfs.js';
import { grantedKeys, SECRETS_STATE_KEY } from './job-document.js';
import { NosanaJobs, type JobAccount } from './jobs.js';
import { JobState } from './jobs-idl.js';
import { networkCallTimer } from './metrics.js';
import { SolanaRpc } from './solana-rpc.js';

const isZero = (bytes: Uint8Array) => bytes.every((b) => b === 0);

export class NosanaGrantSource implements GrantSource {
  readonly name = 'nosana';

  constructor(
    private readonly jobs: NosanaJobs,
    private readonly ipfs: IpfsGateway,
    private readonly network: string,
    private readonly log: Logger,
  ) {}

  /** The source for `config`; its network calls are measured in `registry` when one is given. */
  static fromConfig(config: NosanaConfig, log: Logger, registry?: Registry): NosanaGrantSource {
    const timed = networkCallTimer(registry);
    const rpc = new SolanaRpc(config.rpcUrl, config.commitment, config.rpcTimeoutMs, timed);
    return new NosanaGrantSource(
      new NosanaJobs(rpc, config.jobsProgram, config.accountCacheSeconds),
      new IpfsGateway(config.ipfsGateway, config.ipfsTimeoutMs, config.ipfsMaxBytes, config.ipfsCacheSeconds, timed),
      config.network,
      log.child({ grantSource: 'nosana' }),
    );
  }

  async accessFor(job: string, reader: string): Promise<JobAccess[]> {
    if (!decodeAddress(job)) return [];
    try {
      return [await this.access(job, reader)];
    } catch (error) {
      // Refusals are the caller's business; the network failing is the operator's.
      if (error instanceof HttpError && error.statusCode >= 500) this.log.warn({ job, err: error.message }, 'nosana network call failed');
      throw error;
    }
  }

  private async access(job: string, reader: string): Promise<JobAccess> {
    const account = await this.jobs.job(job);
    if (account === null) throw notFound(`job ${job} does not exist on the Nosana ${this.network} network`);
    const access = account.state < JobState.Done ? await this.runningJob(account, reader) : await this.finishedJob(account, reader);
    this.log.debug({ job, reader, owner: access.owner, keys: access.keys.length }, 'nosana grant');
    return access;
  }

  private async runningJob(job: JobAccount, reader: string): Promise<JobAccess> {
    const runs = await this.jobs.runsOf(job.address);
    if (!runs.some((run) => run.node === reader)) {
      const why = runs.length === 0 ? 'no node runs it yet' : 'another node runs it';
      throw forbidden(`address ${reader} does not run job ${job.address}: ${why}`);
    }
    if (isZero(job.ipfsJob)) throw notFound(`job ${job.address} has no job definition on IPFS`);
    const cid = cidFromDigest(job.ipfsJob);
    const keys = grantedKeys(await this.ipfs.json(cid), `the job definition of ${job.address} (IPFS ${cid})`);
    if (keys.length === 0) throw forbidden(`job ${job.address} grants no secrets: its job definition lists none in state["${SECRETS_STATE_KEY}"] or secrets`);
    return { owner: job.project, keys, source: this.name };
  }

  private async finishedJob(job: JobAccount, reader: string): Promise<JobAccess> {
    if (reader !== job.project) {
      throw forbidden(`job ${job.address} has finished: only its project ${job.project} may read its results, and a node's access ended with the job`);
    }
    if (isZero(job.ipfsResult)) throw notFound(`job ${job.address} has finished without a result on IPFS`);
    const cid = cidFromDigest(job.ipfsResult);
    const keys = grantedKeys(await this.ipfs.json(cid), `the result of job ${job.address} (IPFS ${cid})`);
    if (keys.length === 0) throw forbidden(`job ${job.address} shares no secret results: its result lists none in state["${SECRETS_STATE_KEY}"]`);
    return { owner: job.node, keys, source: this.name };
  }
}
