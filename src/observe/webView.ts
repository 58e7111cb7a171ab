/**
 * The live web view: a page on 127.0.0.1 with the supervision tree, nodes, devices and the
 * training curves (uPlot), updated over server-sent events. The source is any function that
 * gives a snapshot: an in-process `SystemObserver` (`zbmd train --view`) or a control socket
 * (`zbmd view --attach`). A page gets a snapshot every `VIEW_PUSH_MS`, and sooner after a
 * change when the source tells of one.
 */
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { checkPort, type RunningServer, serve } from './httpServer.js';
import { VIEW_PAGE } from './internal/viewPage.js';
import type { ObserverSnapshot } from './Snapshot.js';

export const VIEW_PUSH_MS = 500;
/** Shortest time between two pushes after changes. */
export const VIEW_CHANGE_PUSH_MS = 100;
/** Pages served at once. */
export const VIEW_CLIENTS_MAX = 32;

export interface WebViewOptions {
  readonly source: () => ObserverSnapshot | Promise<ObserverSnapshot>;
  /** 0: any free port. */
  readonly port: number;
  /** Subscribes to changes (returns the unsubscribe function); without it, pushes are periodic only. */
  readonly onChange?: (listener: () => void) => () => void;
  readonly pushMs?: number;
}

function uplotFile(name: string): string {
  const require = createRequire(import.meta.url);
  return readFileSync(join(dirname(require.resolve('uplot/package.json')), 'dist', name), 'utf8');
}

export async function startWebView(options: WebViewOptions): Promise<RunningServer> {
  const port = checkPort(options.port, '--view');
  const script = uplotFile('uPlot.iife.min.js');
  const style = uplotFile('uPlot.min.css');
  const clients = new Set<ServerResponse>();
  let sending = false;
  let lastPush = 0;
  let scheduled: ReturnType<typeof setTimeout> | undefined;
  const push = async (): Promise<void> => {
    if (sending || clients.size === 0) return;
    sending = true;
    try {
      const data = `data: ${JSON.stringify(await options.source())}\n\n`;
      lastPush = Date.now();
      for (const client of clients) client.write(data);
    } catch (error) {
      const data = `event: failure\ndata: ${JSON.stringify((error as Error).message)}\n\n`;
      for (const client of clients) client.write(data);
    } finally {
      sending = false;
    }
  };
  const soon = (): void => {
    if (scheduled !== undefined) return;
    const wait = Math.max(0, VIEW_CHANGE_PUSH_MS - (Date.now() - lastPush));
    scheduled = setTimeout(() => {
      scheduled = undefined;
      void push();
    }, wait);
  };
  const interval = setInterval(() => void push(), options.pushMs ?? VIEW_PUSH_MS);
  const unsubscribe = options.onChange?.(soon) ?? (() => {});
  const server = await serve(port, {
    '/': (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(VIEW_PAGE);
    },
    '/uplot.js': (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    },
    '/uplot.css': (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/css' }).end(style);
    },
    '/snapshot': async (_request, response) => {
      response
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(await options.source()));
    },
    '/events': (request, response) => {
      if (clients.size >= VIEW_CLIENTS_MAX) {
        response
          .writeHead(503, { 'content-type': 'text/plain' })
          .end(`more than ${VIEW_CLIENTS_MAX} pages\n`);
        return;
      }
      response.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      response.write('retry: 1000\n\n');
      clients.add(response);
      request.on('close', () => clients.delete(response));
      soon();
    },
  });
  return {
    port: server.port,
    url: server.url,
    close: async () => {
      clearInterval(interval);
      if (scheduled !== undefined) clearTimeout(scheduled);
      unsubscribe();
      for (const client of clients) client.end();
      clients.clear();
      await server.close();
    },
  };
}
