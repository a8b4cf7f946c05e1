// A small Solana JSON-RPC client over fetch: the two reads this server needs, at the configured commitment, each
// with a timeout. Plain JSON-RPC rather than @solana/web3.js's Connection, which would add retries, websockets and
// its own error shapes for two calls. Errors never carry the RPC URL (providers put API keys in it), only its host.
import { badGateway, unavailable } from '../../errors.js';
import type { Commitment } from './config.js';
import type { TimedCall } from './metrics.js';

/** An account as the RPC returns it with `encoding: base64`, its data decoded. */
export interface RpcAccount {
  owner: string;
  data: Buffer;
}

export interface MemcmpFilter {
  memcmp: { offset: number; bytes: string };
}

interface EncodedAccount {
  owner: string;
  data: [string, string];
}

export class SolanaRpc {
  private readonly host: string;

  constructor(
    private readonly url: string,
    private readonly commitment: Commitment,
    private readonly timeoutMs: number,
    private readonly timed: TimedCall = (_call, run) => run(),
  ) {
    this.host = new URL(url).host;
  }

  /** The account at `address`, or null when there is none at this commitment. */
  async getAccountInfo(address: string): Promise<RpcAccount | null> {
    return this.timed('getAccountInfo', async () => {
      const result = await this.call<{ value: EncodedAccount | null }>('getAccountInfo', [
        address, { encoding: 'base64', commitment: this.commitment },
      ]);
      if (typeof result !== 'object' || result === null || !('value' in result)) throw this.malformed('getAccountInfo');
      return result.value === null ? null : this.account('getAccountInfo', result.value);
    });
  }

  /** The accounts of `program` that match every filter. */
  async getProgramAccounts(program: string, filters: MemcmpFilter[]): Promise<{ pubkey: string; account: RpcAccount }[]> {
    return this.timed('getProgramAccounts', async () => {
      const result = await this.call<{ pubkey: string; account: EncodedAccount }[]>('getProgramAccounts', [
        program, { encoding: 'base64', commitment: this.commitment, filters },
      ]);
      if (!Array.isArray(result)) throw this.malformed('getProgramAccounts');
      return result.map((entry) => ({ pubkey: String(entry.pubkey), account: this.account('getProgramAccounts', entry.account) }));
    });
  }

  private account(method: string, encoded: EncodedAccount): RpcAccount {
    if (typeof encoded?.owner !== 'string' || !Array.isArray(encoded.data) || encoded.data[1] !== 'base64') {
      throw this.malformed(method);
    }
    return { owner: encoded.owner, data: Buffer.from(encoded.data[0], 'base64') };
  }

  private malformed(method: string) {
    return badGateway(`Solana RPC at ${this.host} answered ${method} with something that is not a JSON-RPC account answer`);
  }

  private async call<T>(method: string, params: unknown[]): Promise<T> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      if (error instanceof Error && error.name === 'TimeoutError') {
        throw unavailable(`Solana RPC at ${this.host} did not answer ${method} within ${this.timeoutMs} ms: try again, or set NOSANA_RPC_URL to a faster endpoint`);
      }
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      throw unavailable(`Solana RPC at ${this.host} is unreachable: ${reason}`);
    }
    if (response.status === 429 || response.status >= 500) {
      throw unavailable(`Solana RPC at ${this.host} answered HTTP ${response.status} to ${method}: try again shortly`);
    }
    if (!response.ok) throw badGateway(`Solana RPC at ${this.host} answered HTTP ${response.status} to ${method}`);
    let body: { result?: T; error?: { code?: number; message?: string } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw badGateway(`Solana RPC at ${this.host} answered ${method} with something that is not JSON`);
    }
    if (body.error) {
      throw badGateway(`Solana RPC at ${this.host} refused ${method}: ${String(body.error.message ?? 'no message').slice(0, 200)} (code ${body.error.code})`);
    }
    if (!('result' in body)) throw this.malformed(method);
    return body.result as T;
  }
}
