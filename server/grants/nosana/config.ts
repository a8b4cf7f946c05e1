// Settings of the Nosana grant source. The defaults are mainnet's, so pointing the server at the real network needs
// nothing but GRANT_SOURCES=nosana (and, wisely, an RPC endpoint of one's own: the public one is rate-limited).
import { ConfigError, envInt, envString, requireHttpUrl, type Env } from '../../../common/config.js';
import { decodeAddress } from '../../../common/names.js';

export const NOSANA_NETWORKS = {
  mainnet: { rpcUrl: 'https://api.mainnet-beta.solana.com', jobsProgram: 'nosJhNRqr2bc9g1nfGDcXXTXvYUmxD4cVwy2pMWhrYM' },
  devnet: { rpcUrl: 'https://api.devnet.solana.com', jobsProgram: 'nosJTmGQxvwXy23vng5UjkTbfv91Bzf9jEuro78dAGR' },
} as const;
export type NosanaNetwork = keyof typeof NOSANA_NETWORKS;

/** Nosana's own gateway, the default of its SDKs for both networks. */
export const DEFAULT_IPFS_GATEWAY = 'https://nosana.mypinata.cloud/ipfs/';

// `processed` is left out on purpose: a processed block can still be dropped, and a grant read from it could name a
// node that never ran the job.
const COMMITMENTS = ['confirmed', 'finalized'] as const;
export type Commitment = (typeof COMMITMENTS)[number];

export interface NosanaConfig {
  network: NosanaNetwork;
  rpcUrl: string;
  jobsProgram: string;
  commitment: Commitment;
  /** The CID is appended to this URL. */
  ipfsGateway: string;
  rpcTimeoutMs: number;
  ipfsTimeoutMs: number;
  /** How long a job or run account is trusted: short, because a job's state changes. */
  accountCacheSeconds: number;
  /** How long a fetched IPFS document is kept: longer, because a CID always names the same bytes. */
  ipfsCacheSeconds: number;
  /** The largest job or result JSON accepted from IPFS. */
  ipfsMaxBytes: number;
}

function httpUrl(env: Env, name: string, fallback: string): string {
  return requireHttpUrl(envString(env, name, fallback), name, fallback);
}

export function loadNosanaConfig(env: Env): NosanaConfig {
  const network = envString(env, 'NOSANA_NETWORK', 'mainnet');
  if (!(network in NOSANA_NETWORKS)) {
    throw new ConfigError(`NOSANA_NETWORK=${JSON.stringify(network)} is not known: use ${Object.keys(NOSANA_NETWORKS).join(' or ')}`);
  }
  const defaults = NOSANA_NETWORKS[network as NosanaNetwork];

  const jobsProgram = envString(env, 'NOSANA_JOBS_PROGRAM', defaults.jobsProgram);
  if (!decodeAddress(jobsProgram)) throw new ConfigError('NOSANA_JOBS_PROGRAM must be a base58 program address of 32 bytes');

  const commitment = envString(env, 'NOSANA_COMMITMENT', 'confirmed');
  if (!(COMMITMENTS as readonly string[]).includes(commitment)) {
    throw new ConfigError(`NOSANA_COMMITMENT=${JSON.stringify(commitment)} is not allowed: use ${COMMITMENTS.join(' or ')}`);
  }

  const gateway = httpUrl(env, 'IPFS_GATEWAY', DEFAULT_IPFS_GATEWAY);
  return {
    network: network as NosanaNetwork,
    rpcUrl: httpUrl(env, 'NOSANA_RPC_URL', defaults.rpcUrl),
    jobsProgram,
    commitment: commitment as Commitment,
    // A gateway given as https://host or https://host/ipfs both work: the CID goes after /ipfs/.
    ipfsGateway: /\/ipfs\/?$/.test(gateway) ? gateway.replace(/\/?$/, '/') : `${gateway.replace(/\/+$/, '')}/ipfs/`,
    rpcTimeoutMs: envInt(env, 'NOSANA_RPC_TIMEOUT_MS', 5_000, { min: 100, max: 120_000 }),
    ipfsTimeoutMs: envInt(env, 'IPFS_TIMEOUT_MS', 10_000, { min: 100, max: 120_000 }),
    accountCacheSeconds: envInt(env, 'NOSANA_CACHE_TTL_SECONDS', 10, { min: 0, max: 3600 }),
    ipfsCacheSeconds: envInt(env, 'IPFS_CACHE_TTL_SECONDS', 600, { min: 0, max: 86_400 }),
    ipfsMaxBytes: envInt(env, 'IPFS_MAX_BYTES', 1_048_576, { min: 1024, max: 16_777_216 }),
  };
}

