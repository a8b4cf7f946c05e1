// Reads job definitions and job results from an IPFS gateway. The chain stores a CIDv0 as its bare 32-byte sha256
// digest; the CID is base58(0x12 0x20 ‖ digest) (multihash: sha2-256, 32 bytes). A CID always names the same bytes,
// so a fetched document is cached longer than chain state.
import bs58 from 'bs58';
import { badGateway, HttpError, unavailable } from '../../errors.js';
import { cached } from './cache.js';
import { invalidJobDocument } from './job-document.js';
import type { TimedCall } from './metrics.js';

const SHA2_256_MULTIHASH_PREFIX = [0x12, 0x20];

export function cidFromDigest(digest: Uint8Array): string {
  if (digest.length !== 32) throw new Error(`an IPFS sha2-256 digest has 32 bytes, got ${digest.length}`);
  return bs58.encode(Uint8Array.from([...SHA2_256_MULTIHASH_PREFIX, ...digest]));
}

export class IpfsGateway {
  private readonly host: string;
  private readonly documents: (cid: string) => Promise<{ json: unknown }>;

  constructor(
    private readonly gateway: string,
    private readonly timeoutMs: number,
    private readonly maxBytes: number,
    cacheSeconds: number,
    timed: TimedCall = (_call, run) => run(),
  ) {
    this.host = new URL(gateway).host;
    this.documents = cached(cacheSeconds, async (cid) => ({ json: await timed('ipfs', () => this.fetchJson(cid)) }));
  }

  /** The JSON document stored under `cid`. */
  async json(cid: string): Promise<unknown> {
    return (await this.documents(cid)).json;
  }

  private async fetchJson(cid: string): Promise<unknown> {
    let bytes: Buffer;
    try {
      const response = await fetch(`${this.gateway}${cid}`, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (response.status === 429 || response.status >= 500) {
        throw unavailable(`IPFS gateway ${this.host} answered HTTP ${response.status} for ${cid}: try again shortly`);
      }
      if (!response.ok) throw badGateway(`IPFS gateway ${this.host} answered HTTP ${response.status} for ${cid}`);
      bytes = await this.readLimited(response, cid);
    } catch (error) {
      if (error instanceof HttpError) throw error;
      if (error instanceof Error && error.name === 'TimeoutError') {
        throw unavailable(`IPFS gateway ${this.host} did not deliver ${cid} within ${this.timeoutMs} ms: try again, or set IPFS_GATEWAY to a faster gateway`);
      }
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      throw unavailable(`IPFS gateway ${this.host} is unreachable: ${reason}`);
    }
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch {
      throw invalidJobDocument(`the document at IPFS ${cid} is not JSON`);
    }
  }

  /** Reads the body, refusing one larger than IPFS_MAX_BYTES without holding more than that in memory. */
  private async readLimited(response: Response, cid: string): Promise<Buffer> {
    const tooLarge = () => invalidJobDocument(`the document at IPFS ${cid} is larger than ${this.maxBytes} bytes (IPFS_MAX_BYTES)`);
    if (Number(response.headers.get('content-length') ?? 0) > this.maxBytes) throw tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    if (response.body === null) return Buffer.alloc(0);
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > this.maxBytes) throw tooLarge(); // leaving the loop cancels the download
      chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks);
  }
}
