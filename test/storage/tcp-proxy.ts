// A TCP proxy in front of a shared database server, so a test can make "the database" go away and come back without
// stopping the server other test files use. `cut()` resets every open connection and every new one until `restore()`.
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private down = false;

  private constructor(private readonly server: Server, readonly port: number) {}

  /** Listens on a free loopback port and forwards to `host:port`. */
  static async start(host: string, port: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy!.accept(client, host, port));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const address = server.address();
    proxy = new TcpProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  /** `connection` with its host and port replaced by the proxy's. */
  static via(connection: string, proxy: TcpProxy): string {
    return connection.replace(/^([a-z+]+:\/\/(?:[^@/]*@)?)[^/?]*/i, `$1127.0.0.1:${proxy.port}`);
  }

  /** Host and port of a URL-shaped connection string (the first host of a mongodb list). */
  static target(connection: string): { host: string; port: number } {
    const match = /^[a-z+]+:\/\/(?:[^@/]*@)?([^/?,:]+):(\d+)/i.exec(connection);
    if (!match) throw new Error(`no host:port in ${connection.replace(/:[^:@/]*@/, ':***@')}`);
    return { host: match[1]!, port: Number(match[2]) };
  }

  private accept(client: Socket, host: string, port: number): void {
    if (this.down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  /** The database is gone: open connections are reset and new ones refused the same way. */
  cut(): void {
    this.down = true;
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
