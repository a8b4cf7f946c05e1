// A replay of an IPFS HTTP gateway (GET /ipfs/<CIDv0>), served by node:http on 127.0.0.1. It is not IPFS: it serves
// documents the test adds, under the CIDs `ipfs add` (and Pinata's pinning) would give them. That CID is not the
// sha256 of the JSON bytes: with the defaults (CIDv0, 256 KiB chunks, no raw leaves) a file that fits one chunk is a
// single dag-pb node, PBNode{Data: UnixFS{Type: File, Data: bytes, filesize}}, and the CID's digest is the sha256 of
// that node's protobuf bytes. `unixfsCidV0` builds exactly that (the replay test checks it against CIDs `ipfs add`
// prints for known files); the 32-byte digest is what a JobAccount stores in ipfsJob / ipfsResult.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import bs58 from 'bs58';

const CHUNK_SIZE = 256 * 1024;

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n >= 0x80) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** The digest and CIDv0 `ipfs add` gives a file of one chunk. */
export function unixfsCidV0(content: Buffer): { cid: string; digest: Uint8Array } {
  if (content.length > CHUNK_SIZE) throw new Error('this replay builds single-chunk files only');
  const unixfs = Buffer.concat([
    Buffer.from([0x08, 0x02]), // Type = File
    ...(content.length > 0 ? [Buffer.from([0x12]), varint(content.length), content] : []), // Data
    Buffer.from([0x18]), varint(content.length), // filesize
  ]);
  const node = Buffer.concat([Buffer.from([0x0a]), varint(unixfs.length), unixfs]); // PBNode.Data, no links
  const digest = createHash('sha256').update(node).digest();
  return { cid: bs58.encode(Buffer.concat([Buffer.from([0x12, 0x20]), digest])), digest: new Uint8Array(digest) };
}

export class IpfsGatewayReplay {
  private readonly files = new Map<string, Buffer>();
  /** Every CID asked for, in order. */
  readonly requests: string[] = [];

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<IpfsGatewayReplay> {
    let replay: IpfsGatewayReplay | undefined;
    const server = createServer((request, response) => {
      const cid = /^\/ipfs\/([1-9A-HJ-NP-Za-km-z]+)$/.exec(request.url ?? '')?.[1];
      const file = cid === undefined ? undefined : replay!.files.get(cid);
      if (cid !== undefined) replay!.requests.push(cid);
      if (file === undefined) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': file.length }).end(file);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    replay = new IpfsGatewayReplay(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/ipfs/`);
    return replay;
  }

  /** Adds a document as its JSON text (or raw text) and returns the digest a job account stores. */
  add(document: unknown): { cid: string; digest: Uint8Array } {
    const content = Buffer.from(typeof document === 'string' ? document : JSON.stringify(document));
    const added = unixfsCidV0(content);
    this.files.set(added.cid, content);
    return added;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
