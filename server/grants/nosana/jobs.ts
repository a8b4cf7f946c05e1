// Reads Nosana job and run accounts from the chain and decodes them with the jobs program's IDL (anchor's
// BorshAccountsCoder, which checks the 8-byte discriminator). Unlike upstream, it also checks that the jobs program
// owns each account: anyone can create an account under another program whose bytes start with the JobAccount
// discriminator and name any node or project.
import { BorshAccountsCoder } from '@coral-xyz/anchor';
import bs58 from 'bs58';
import { badGateway, forbidden } from '../../errors.js';
import { cached, type Cached } from './cache.js';
import { JOB_ACCOUNT, NOSANA_JOBS_IDL, RUN_ACCOUNT } from './jobs-idl.js';
import type { RpcAccount, SolanaRpc } from './solana-rpc.js';

export interface JobAccount {
  address: string;
  ipfsJob: Uint8Array;
  ipfsResult: Uint8Array;
  node: string;
  project: string;
  state: number;
}

export interface RunAccount {
  address: string;
  job: string;
  node: string;
}

/** What anchor's coder returns for the fields read here (pubkeys are web3.js PublicKeys). */
interface DecodedJob {
  ipfs_job: number[];
  ipfs_result: number[];
  node: { toBase58(): string };
  project: { toBase58(): string };
  state: number;
}
interface DecodedRun {
  job: { toBase58(): string };
  node: { toBase58(): string };
}

export class NosanaJobs {
  private readonly coder = new BorshAccountsCoder(NOSANA_JOBS_IDL);
  private readonly runDiscriminator = bs58.encode(this.coder.accountDiscriminator(RUN_ACCOUNT));
  // A lookup result is kept for a few seconds only: a job moves from queued to running to done. The cache also
  // coalesces concurrent lookups of one job into one RPC call. `{job: null}` remembers "no such account".
  private readonly jobs: Cached<{ job: JobAccount | null }>;
  private readonly runs: Cached<{ runs: RunAccount[] }>;

  constructor(private readonly rpc: SolanaRpc, readonly programId: string, cacheSeconds: number) {
    this.jobs = cached(cacheSeconds, async (address) => {
      const account = await this.rpc.getAccountInfo(address);
      return { job: account === null ? null : this.decodeJob(address, account) };
    });
    this.runs = cached(cacheSeconds, async (job) => {
      const found = await this.rpc.getProgramAccounts(this.programId, [
        { memcmp: { offset: 0, bytes: this.runDiscriminator } },
        { memcmp: { offset: 8, bytes: job } }, // RunAccount.job, right after the discriminator
      ]);
      return { runs: found.map(({ pubkey, account }) => this.decodeRun(pubkey, account)) };
    });
  }

  /** The job account at `address`, or null when no account exists there. */
  async job(address: string): Promise<JobAccount | null> {
    return (await this.jobs(address)).job;
  }

  /** The run accounts of `job`: the nodes that claimed it and are running it. */
  async runsOf(job: string): Promise<RunAccount[]> {
    return (await this.runs(job)).runs.filter((run) => run.job === job);
  }

  private checkOwner(address: string, account: RpcAccount, what: string): void {
    if (account.owner !== this.programId) {
      throw forbidden(`account ${address} is owned by program ${account.owner}, not the Nosana jobs program ${this.programId}: it is not a ${what} and is not trusted`);
    }
  }

  private decode<T>(name: string, address: string, account: RpcAccount, what: string): T {
    this.checkOwner(address, account, what);
    const discriminator = this.coder.accountDiscriminator(name);
    if (!account.data.subarray(0, discriminator.length).equals(discriminator)) {
      throw forbidden(`account ${address} belongs to the Nosana jobs program but is not a ${what}`);
    }
    try {
      return this.coder.decode(name, account.data) as T;
    } catch {
      throw badGateway(`account ${address} does not decode as a ${what}: is NOSANA_JOBS_PROGRAM the jobs program?`);
    }
  }

  private decodeJob(address: string, account: RpcAccount): JobAccount {
    const job = this.decode<DecodedJob>(JOB_ACCOUNT, address, account, 'Nosana job');
    return {
      address,
      ipfsJob: Uint8Array.from(job.ipfs_job),
      ipfsResult: Uint8Array.from(job.ipfs_result),
      node: job.node.toBase58(),
      project: job.project.toBase58(),
      state: job.state,
    };
  }

  private decodeRun(address: string, account: RpcAccount): RunAccount {
    const run = this.decode<DecodedRun>(RUN_ACCOUNT, address, account, 'Nosana run');
    return { address, job: run.job.toBase58(), node: run.node.toBase58() };
  }
}
