/**
 * Small HTTP servers of the show side: `/metrics` for Prometheus (`--metrics-port`) and the
 * web view. They bind 127.0.0.1 only: what they show is for this machine.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidObserveOption } from './errors.js';
import { metricsRegistry } from './registry.js';

export const OBSERVE_HOST = '127.0.0.1';

export type Route = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/** A running server; `port` is the one bound (useful when 0 asked for any free port). */
export interface RunningServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** A port option: an integer in [0, 65535] (0: any free port). */
export function checkPort(value: number, option: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 65_535)
    throw new InvalidObserveOption(option, value, 'a port in [0, 65535] (0: any free port)');
  return value;
}

/** Serves `routes` (by path, GET) on 127.0.0.1:`port`. */
export function serve(port: number, routes: Readonly<Record<string, Route>>): Promise<RunningServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    const route = routes[path];
    if (request.method !== 'GET' || route === undefined) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}\n`);
      return;
    }
    Promise.resolve(route(request, response)).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`error: ${(error as Error).message}\n`);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, OBSERVE_HOST, () => {
      server.off('error', reject);
      const bound = (server.address() as AddressInfo).port;
      resolve({
        port: bound,
        url: `http://${OBSERVE_HOST}:${bound}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

/** The route that serves the shared registry in Prometheus's text format. */
export const metricsRoute: Route = async (_request, response) => {
  const body = await metricsRegistry.metrics();
  response.writeHead(200, { 'content-type': metricsRegistry.contentType }).end(body);
};

/** `/metrics` on 127.0.0.1:`port` (`--metrics-port`). */
export async function serveMetrics(port: number): Promise<RunningServer> {
  return await serve(checkPort(port, '--metrics-port'), { '/metrics': metricsRoute });
}
