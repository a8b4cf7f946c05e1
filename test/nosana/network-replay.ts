// The Nosana network as the tests replay it: the Solana RPC replay holding jobs program accounts and the IPFS gateway
// replay holding job documents, plus a secrets server pointed at them. The server gets only the two URLs: the jobs
// program id, commitment and everything else keep their mainnet defaults.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bs58 from 'bs58';
import { SecretsClient } from '../../common/client.js';
import { generateKeypair } from '../../common/login.js';
import { NOSANA_NETWORKS } from '../../server/grants/nosana/config.js';
import { JobState } from '../../server/grants/nosana/jobs-idl.js';
import { startServer, type RunningServer } from '../../server/main.js';
import { captureLogs } from '../helpers/logs.js';
import { IpfsGatewayReplay } from './ipfs-gateway-replay.js';
import { jobAccountData, runAccountData, SolanaRpcReplay } from './solana-rpc-replay.js';

export const MAINNET_JOBS_PROGRAM = NOSANA_NETWORKS.mainnet.jobsProgram;

export class NosanaNetworkReplay {
  private constructor(readonly rpc: SolanaRpcReplay, readonly ipfs: IpfsGatewayReplay) {}

  static async start(): Promise<NosanaNetworkReplay> {
    return new NosanaNetworkReplay(await SolanaRpcReplay.start(), await IpfsGatewayReplay.start());
  }

  /** The only settings that differ from a server on mainnet. */
  get env(): Record<string, string> {
    return { NOSANA_RPC_URL: this.rpc.url, IPFS_GATEWAY: this.ipfs.url };
  }

  /** Lists a job whose definition is `definition`, claimed by `node`; returns the job's address. */
  async runningJob(options: { project: string; node: string; definition: unknown }): Promise<string> {
    const job = generateKeypair().address;
    const { digest } = this.ipfs.add(options.definition);
    this.rpc.put(job, { owner: MAINNET_JOBS_PROGRAM, data: await jobAccountData({ ipfsJob: digest, project: options.project, state: JobState.Running }) });
    this.rpc.put(generateKeypair().address, { owner: MAINNET_JOBS_PROGRAM, data: await runAccountData({ job, node: options.node }) });
    return job;
  }

  /** Lists a job nobody has claimed yet. */
  async queuedJob(options: { project: string; definition: unknown }): Promise<string> {
    const job = generateKeypair().address;
    const { digest } = this.ipfs.add(options.definition);
    this.rpc.put(job, { owner: MAINNET_JOBS_PROGRAM, data: await jobAccountData({ ipfsJob: digest, project: options.project, state: JobState.Queued }) });
    return job;
  }

  /** Finishes `job` as the program's `finish` does: result posted, node recorded, run account closed. */
  async finish(job: string, options: { project: string; node: string; definition: unknown; result?: unknown }): Promise<void> {
    const ipfsResult = options.result === undefined ? undefined : this.ipfs.add(options.result).digest;
    this.rpc.put(job, {
      owner: MAINNET_JOBS_PROGRAM,
      data: await jobAccountData({
        ipfsJob: this.ipfs.add(options.definition).digest, ipfsResult, project: options.project, node: options.node,
        state: JobState.Done, timeEnd: Math.floor(Date.now() / 1000),
      }),
    });
    for (const [address, account] of this.rpc.accounts) {
      // A RunAccount's `job` field follows its discriminator.
      if (account.data.subarray(8, 40).equals(Buffer.from(bs58.decode(job)))) this.rpc.accounts.delete(address);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.rpc.close(), this.ipfs.close()]);
  }
}

export interface NosanaTestServer extends RunningServer {
  client: SecretsClient;
  /** Every log line so far, raw JSON text: tests check no secret value is in them. */
  logs: string[];
}

/** A secrets server on a free loopback port with SQLite in a fresh temp dir, its log captured. */
export async function startNosanaServer(env: Record<string, string>): Promise<NosanaTestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nss-nosana-'));
  const { logs, logger } = captureLogs();
  const server = await startServer({
    PORT: '0', HOST: '127.0.0.1', STORAGE_CONNECTION: `sqlite://${join(dir, 'db.sqlite')}`, SECRETS_STATE_DIR: dir,
    ...env,
  }, logger);
  return { ...server, client: new SecretsClient({ endpoint: server.url }), logs };
}
