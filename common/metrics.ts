// A Prometheus registry per process, with the default Node.js metrics, and the small HTTP listener the operator and
// the injector use for /metrics and their probes (the server serves the same paths on its API port, or /metrics here
// with its METRICS_PORT).
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';

export function createRegistry(part: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component: part });
  collectDefaultMetrics({ register: registry, prefix: 'nosana_secrets_' });
  return registry;
}

export interface ProbeServerOptions {
  port: number;
  host?: string;
  registry: Registry;
  /** The text of /metrics when it is not this registry's alone (the server's workers sum theirs in the primary). */
  collect?: () => Promise<string>;
  /** Readiness: whether this process can do its work now. */
  ready: () => boolean | Promise<boolean>;
}

export async function startProbeServer(options: ProbeServerOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      (options.collect ?? (() => options.registry.metrics()))().then(
        (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (path === '/readyz') {
      Promise.resolve(options.ready()).then((ready) => {
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify({ status: ready ? 'ready' : 'not ready' }));
      }, () => res.writeHead(503).end());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"type":"NotFoundError","error":"not found"}');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return server;
}
