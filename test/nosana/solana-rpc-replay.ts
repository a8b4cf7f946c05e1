// A replay of the Solana JSON-RPC API, for the two calls the Nosana grant source makes (getAccountInfo and
// getProgramAccounts with memcmp filters), served by node:http on 127.0.0.1. It is not the network: it answers from
// accounts the test puts in, encoded exactly as the chain holds them: Anchor account bytes built with the jobs IDL
// and anchor's BorshAccountsCoder (the real 8-byte discriminators), returned in the RPC's base64 account shape.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BN, BorshAccountsCoder, web3 } from '@coral-xyz/anchor';
import bs58 from 'bs58';
import { JOB_ACCOUNT, NOSANA_JOBS_IDL, RUN_ACCOUNT } from '../../server/grants/nosana/jobs-idl.js';

export const SYSTEM_PROGRAM = '11111111111111111111111111111111';

export interface ReplayAccount {
  owner: string;
  data: Buffer;
}

export interface RpcCall {
  method: string;
  commitment?: string;
}

const coder = new BorshAccountsCoder(NOSANA_JOBS_IDL);

export interface JobFields {
  ipfsJob: Uint8Array;
  ipfsResult?: Uint8Array;
  market?: string;
  node?: string;
  payer?: string;
  price?: number;
  project: string;
  state: number;
  timeEnd?: number;
  timeStart?: number;
  /** The field newer program versions append; written so the bytes have today's on-chain size (233). */
  timeout?: number;
}

/** JobAccount bytes as the jobs program stores them: discriminator, Borsh fields, then the appended `timeout`. */
export async function jobAccountData(fields: JobFields): Promise<Buffer> {
  const key = (address: string | undefined) => new web3.PublicKey(address ?? SYSTEM_PROGRAM);
  const encoded = await coder.encode(JOB_ACCOUNT, {
    ipfs_job: Array.from(fields.ipfsJob),
    ipfs_result: Array.from(fields.ipfsResult ?? new Uint8Array(32)),
    market: key(fields.market),
    node: key(fields.node),
    payer: key(fields.payer ?? fields.project),
    price: new BN(fields.price ?? 100_000),
    project: key(fields.project),
    state: fields.state,
    time_end: new BN(fields.timeEnd ?? 0),
    time_start: new BN(fields.timeStart ?? Math.floor(Date.now() / 1000)),
  });
  const timeout = Buffer.alloc(8);
  timeout.writeBigInt64LE(BigInt(fields.timeout ?? 3600));
  return Buffer.concat([encoded, timeout]);
}

/** RunAccount bytes: the node that claimed `job`. */
export async function runAccountData(fields: { job: string; node: string; payer?: string; state?: number; time?: number }): Promise<Buffer> {
  return coder.encode(RUN_ACCOUNT, {
    job: new web3.PublicKey(fields.job),
    node: new web3.PublicKey(fields.node),
    payer: new web3.PublicKey(fields.payer ?? fields.node),
    state: fields.state ?? 0,
    time: new BN(fields.time ?? Math.floor(Date.now() / 1000)),
  });
}

type Filter = { memcmp?: { offset: number; bytes: string }; dataSize?: number };

export class SolanaRpcReplay {
  readonly accounts = new Map<string, ReplayAccount>();
  readonly calls: RpcCall[] = [];
  /** When set, requests are held without an answer until the replay closes: an RPC that times out. */
  hang = false;
  /** When set, every call is answered with this JSON-RPC error. */
  failWith: { code: number; message: string } | undefined;
  private readonly held: ServerResponse[] = [];

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<SolanaRpcReplay> {
    let replay: SolanaRpcReplay | undefined;
    const server = createServer((request, response) => void replay!.handle(request, response));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    replay = new SolanaRpcReplay(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return replay;
  }

  put(address: string, account: ReplayAccount): void {
    this.accounts.set(address, account);
  }

  async close(): Promise<void> {
    for (const response of this.held) response.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const { id, method, params } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; method: string; params: unknown[] };
    const options = (params[1] ?? {}) as { encoding?: string; commitment?: string; filters?: Filter[] };
    this.calls.push({ method, commitment: options.commitment });
    if (this.hang) {
      this.held.push(response);
      return;
    }
    const answer = (body: object) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ jsonrpc: '2.0', id, ...body }));
    };
    if (this.failWith) return answer({ error: this.failWith });
    if (options.encoding !== 'base64') return answer({ error: { code: -32602, message: 'this replay serves base64 only' } });
    const context = { apiVersion: '2.2.0', slot: 350_000_000 };
    if (method === 'getAccountInfo') {
      const account = this.accounts.get(String(params[0]));
      return answer({ result: { context, value: account ? this.encoded(account) : null } });
    }
    if (method === 'getProgramAccounts') {
      const program = String(params[0]);
      const matches = [...this.accounts].filter(([, account]) => account.owner === program &&
        (options.filters ?? []).every((filter) => matches_(account.data, filter)));
      return answer({ result: matches.map(([pubkey, account]) => ({ pubkey, account: this.encoded(account) })) });
    }
    answer({ error: { code: -32601, message: `Method not found: ${method}` } });
  }

  private encoded(account: ReplayAccount) {
    return {
      data: [account.data.toString('base64'), 'base64'],
      executable: false,
      lamports: 2_600_000,
      owner: account.owner,
      rentEpoch: 18_446_744_073_709_551_615,
      space: account.data.length,
    };
  }
}

function matches_(data: Buffer, filter: Filter): boolean {
  if (filter.dataSize !== undefined) return data.length === filter.dataSize;
  if (filter.memcmp) {
    const bytes = Buffer.from(bs58.decode(filter.memcmp.bytes));
    return data.subarray(filter.memcmp.offset, filter.memcmp.offset + bytes.length).equals(bytes);
  }
  return true;
}
