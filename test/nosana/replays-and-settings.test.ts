// The replays encode what the network holds (so the grant tests prove something about the real network), and the
// settings default to mainnet (so a real deployment changes configuration only).
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bs58 from 'bs58';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../common/config.js';
import { generateKeypair } from '../../common/login.js';
import { loadServerConfig } from '../../server/config.js';
import { loadNosanaConfig } from '../../server/grants/nosana/config.js';
import { cidFromDigest } from '../../server/grants/nosana/ipfs.js';
import { NOSANA_JOBS_IDL } from '../../server/grants/nosana/jobs-idl.js';
import { unixfsCidV0 } from './ipfs-gateway-replay.js';
import { jobAccountData, runAccountData } from './solana-rpc-replay.js';

describe('the replays', () => {
  it('serve documents under the CIDv0 that `ipfs add` prints for the same bytes', () => {
    // CIDs `ipfs add` (CIDv0, default chunker) prints for these files, as published in IPFS docs and examples.
    expect(unixfsCidV0(Buffer.alloc(0)).cid).toBe('QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH');
    expect(unixfsCidV0(Buffer.from('hello world')).cid).toBe('Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD');
    expect(unixfsCidV0(Buffer.from('hello world\n')).cid).toBe('QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o');
    // The server turns the 32 bytes a job account stores back into the same CID.
    const { cid, digest } = unixfsCidV0(Buffer.from('{"state":{"nosana/secrets":["KEY"]}}'));
    expect(cidFromDigest(digest)).toBe(cid);
  });

  it('use the discriminators Anchor derives: the first 8 bytes of sha256("account:<Name>")', () => {
    for (const account of NOSANA_JOBS_IDL.accounts ?? []) {
      const derived = [...createHash('sha256').update(`account:${account.name}`).digest().subarray(0, 8)];
      expect(account.discriminator).toEqual(derived);
    }
  });

  it('lay out job and run accounts as the jobs program does: fields at their byte offsets, today\'s sizes', async () => {
    const [project, node, job] = [generateKeypair().address, generateKeypair().address, generateKeypair().address];
    const ipfsJob = new Uint8Array(32).fill(0xab);
    const data = await jobAccountData({ ipfsJob, project, node, state: 2 });
    // discriminator 8, ipfsJob 32, ipfsResult 32, market 32, node 32, payer 32, price 8, project 32, state 1,
    // timeEnd 8, timeStart 8, timeout 8
    expect(data.length).toBe(233);
    expect(data.subarray(8, 40)).toEqual(Buffer.from(ipfsJob));
    expect(bs58.encode(data.subarray(104, 136))).toBe(node);
    expect(bs58.encode(data.subarray(176, 208))).toBe(project);
    expect(data[208]).toBe(2);
    const run = await runAccountData({ job, node });
    expect(run.length).toBe(8 + 32 + 32 + 32 + 1 + 8);
    expect(bs58.encode(run.subarray(8, 40))).toBe(job); // the offset the getProgramAccounts filter compares
  });
});

describe('settings', () => {
  it('default to mainnet, so pointing the server at the real network changes nothing but configuration', () => {
    expect(loadNosanaConfig({})).toEqual({
      network: 'mainnet',
      rpcUrl: 'https://api.mainnet-beta.solana.com',
      jobsProgram: 'nosJhNRqr2bc9g1nfGDcXXTXvYUmxD4cVwy2pMWhrYM',
      commitment: 'confirmed',
      ipfsGateway: 'https://nosana.mypinata.cloud/ipfs/',
      rpcTimeoutMs: 5000,
      ipfsTimeoutMs: 10000,
      accountCacheSeconds: 10,
      ipfsCacheSeconds: 600,
      ipfsMaxBytes: 1_048_576,
    });
  });

  it('switch RPC and jobs program together with NOSANA_NETWORK=devnet, and take overrides', () => {
    expect(loadNosanaConfig({ NOSANA_NETWORK: 'devnet' })).toMatchObject({
      rpcUrl: 'https://api.devnet.solana.com', jobsProgram: 'nosJTmGQxvwXy23vng5UjkTbfv91Bzf9jEuro78dAGR',
    });
    const program = generateKeypair().address;
    expect(loadNosanaConfig({
      NOSANA_JOBS_PROGRAM: program, NOSANA_RPC_URL: 'https://rpc.example.com/?api-key=k', NOSANA_COMMITMENT: 'finalized',
      IPFS_GATEWAY: 'https://ipfs.example.com',
    })).toMatchObject({
      jobsProgram: program, rpcUrl: 'https://rpc.example.com/?api-key=k', commitment: 'finalized', ipfsGateway: 'https://ipfs.example.com/ipfs/',
    });
  });

  it('refuse values that cannot work, naming the variable', () => {
    expect(() => loadNosanaConfig({ NOSANA_NETWORK: 'testnet' })).toThrow(/NOSANA_NETWORK="testnet" is not known: use mainnet or devnet/);
    expect(() => loadNosanaConfig({ NOSANA_COMMITMENT: 'processed' })).toThrow(/NOSANA_COMMITMENT="processed" is not allowed/);
    expect(() => loadNosanaConfig({ NOSANA_JOBS_PROGRAM: 'not-base58!' })).toThrow(/NOSANA_JOBS_PROGRAM must be a base58 program address/);
    expect(() => loadNosanaConfig({ NOSANA_RPC_URL: 'localhost:8899' })).toThrow(ConfigError);
    expect(() => loadNosanaConfig({ IPFS_TIMEOUT_MS: '0' })).toThrow(/IPFS_TIMEOUT_MS="0" is not valid/);
  });

  it('are read only when GRANT_SOURCES names nosana', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nss-settings-'));
    const log = pino({ level: 'silent' });
    const env = { SECRETS_STATE_DIR: dir, NOSANA_NETWORK: 'testnet' };
    expect(loadServerConfig({ ...env, GRANT_SOURCES: 'api' }, log).nosana).toBeUndefined();
    expect(() => loadServerConfig({ ...env, GRANT_SOURCES: 'api,nosana' }, log)).toThrow(/NOSANA_NETWORK/);
  });
});
