// The account layouts of the Nosana jobs program, as an Anchor IDL (spec 0.1.0, the format @coral-xyz/anchor 0.30+
// reads). Taken from the program's published IDL: nosana-ci/nosana-kit `idl/nosana_jobs.json` (legacy IDL format,
// converted by hand to the new one: `publicKey` became `pubkey`, field names are the Rust ones, and each account
// carries its discriminator, the first 8 bytes of sha256("account:<Name>"), which match the generated clients in
// nosana-kit `src/generated_clients/jobs/accounts/*.ts`). Only the two accounts this server reads are kept.
//
// JobAccount lists the fields every version of the program has. Newer versions append `timeout: i64`; Borsh reads
// fields in order and ignores trailing bytes, so accounts written by either version decode with this layout.
import type { Idl } from '@coral-xyz/anchor';

export const JOB_ACCOUNT = 'JobAccount';
export const RUN_ACCOUNT = 'RunAccount';

/** JobAccount.state values (the program's JobState; 1 is the running state, between listing and finishing). */
export const JobState = { Queued: 0, Running: 1, Done: 2, Stopped: 3 } as const;

export const NOSANA_JOBS_IDL: Idl = {
  address: 'nosJhNRqr2bc9g1nfGDcXXTXvYUmxD4cVwy2pMWhrYM',
  metadata: { name: 'nosana_jobs', version: '0.1.0', spec: '0.1.0' },
  instructions: [],
  accounts: [
    { name: JOB_ACCOUNT, discriminator: [91, 16, 162, 5, 45, 210, 125, 65] },
    { name: RUN_ACCOUNT, discriminator: [194, 169, 110, 230, 235, 11, 225, 22] },
  ],
  types: [
    {
      name: JOB_ACCOUNT,
      type: {
        kind: 'struct',
        fields: [
          { name: 'ipfs_job', type: { array: ['u8', 32] } },
          { name: 'ipfs_result', type: { array: ['u8', 32] } },
          { name: 'market', type: 'pubkey' },
          { name: 'node', type: 'pubkey' },
          { name: 'payer', type: 'pubkey' },
          { name: 'price', type: 'u64' },
          { name: 'project', type: 'pubkey' },
          { name: 'state', type: 'u8' },
          { name: 'time_end', type: 'i64' },
          { name: 'time_start', type: 'i64' },
        ],
      },
    },
    {
      name: RUN_ACCOUNT,
      type: {
        kind: 'struct',
        fields: [
          { name: 'job', type: 'pubkey' },
          { name: 'node', type: 'pubkey' },
          { name: 'payer', type: 'pubkey' },
          { name: 'state', type: 'u8' },
          { name: 'time', type: 'i64' },
        ],
      },
    },
  ],
};
