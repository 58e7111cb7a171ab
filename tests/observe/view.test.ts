/// <reference lib="dom" />
import { existsSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { observeTraining } from '../../src/cli/observe.js';
import { CpuBackend } from '../../src/gpu/backends/CpuBackend.js';
import { TINY_DATASET_DIR } from '../../src/ml/data/index.js';
import { train } from '../../src/ml/training/index.js';
import { ControlClient, SystemObserver, startControlServer, startWebView } from '../../src/observe/index.js';
import { supervisedFixture } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

let browser: Browser;
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'zbmd-view-'));
  if (existsSync(CHROMIUM))
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: FLAGS,
      headless: true,
      userDataDir: join(directory, 'profile'),
    });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await rm(directory, { recursive: true, force: true });
});

describe.skipIf(!existsSync(CHROMIUM))('the web view in headless Chromium', () => {
  it('shows the tree, follows an injected crash, draws the curves with recoveries', async () => {
    const fixture = await supervisedFixture('zbmd@view');
    const observer = new SystemObserver(fixture.system, { metrics: false });
    observer.watchDevices(() => [
      {
        id: 'cpu:0',
        memoryBytes: 8 * 2 ** 30,
        health: 'healthy',
        errorCount: 0,
        lastError: undefined,
        current: true,
      },
    ]);
    for (let step = 1; step <= 200; step++)
      observer.training.step(step, 2.3 * Math.exp(-step / 60) + 0.1, step * 5);
    observer.training.recovery(120, 'model_crash');
    observer.training.epoch(100, 0.71);
    observer.training.epoch(200, 0.83);
    const view = await startWebView({
      source: () => observer.snapshot(),
      port: 0,
      onChange: (listener) => observer.onChange(listener),
    });
    const page = await browser.newPage();
    try {
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(`${view.url}/`, { waitUntil: 'load' });
      expect(view.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
      // the tree shows both children under the supervisor
      await page.waitForFunction(() => document.querySelectorAll('#tree li[data-id]').length === 3, {
        timeout: 10_000,
      });
      const ids = await page.$$eval('#tree li[data-id]', (items) =>
        items.map((item) => item.getAttribute('data-id')),
      );
      expect(ids).toEqual(['root', 'counter', 'idle']);
      const before = await page.$eval('#tree li[data-id="counter"]', (item) => item.getAttribute('data-pid'));

      // a crash injected now: the page shows the new pid and the restart
      const restarted = await fixture.crashCounter();
      await page.waitForFunction(
        (pid) => document.querySelector('#tree li[data-id="counter"]')?.getAttribute('data-pid') === pid,
        { timeout: 10_000 },
        String(restarted.pid),
      );
      expect(String(restarted.pid)).not.toBe(before);
      expect(await page.$eval('#tree li[data-id="counter"] .restarts', (badge) => badge.textContent)).toBe(
        '1',
      );
      expect(await page.$eval('#events', (list) => list.textContent)).toMatch(
        /child_exited counter .*counter: asked to crash/,
      );

      // the curves have their points; the recovery is listed
      const points = await page.evaluate(() => {
        const charts = (
          window as unknown as { zbmdCharts: { loss: { data: number[][] }; accuracy: { data: number[][] } } }
        ).zbmdCharts;
        return { loss: charts.loss.data[1].length, accuracy: charts.accuracy.data[1].length };
      });
      expect(points).toEqual({ loss: 200, accuracy: 2 });
      expect(await page.$eval('#recoveries', (element) => element.textContent)).toContain('model_crash 1');
      expect(await page.$eval('#devices', (element) => element.textContent)).toMatch(/cpu:0\s*healthy/);
      expect(await page.$eval('#nodes', (element) => element.textContent)).toContain(
        'zbmd@view (this node; no cluster)',
      );

      const screenshot = join(directory, 'view.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect((await stat(screenshot)).size).toBeGreaterThan(10_000);
      if (process.env.ZBMD_KEEP_SCREENSHOT)
        await page.screenshot({ path: process.env.ZBMD_KEEP_SCREENSHOT, fullPage: true });
    } finally {
      await page.close();
      await view.close();
      observer.stop();
      fixture.system.shutdown();
    }
  });

  it('zbmd view --attach: the page of a program reached through its control socket', async () => {
    const fixture = await supervisedFixture('zbmd@attached');
    const observer = new SystemObserver(fixture.system, { metrics: false });
    const control = await startControlServer(() => observer.snapshot(), join(directory, 'attach.sock'));
    const client = new ControlClient(control.path);
    const view = await startWebView({ source: () => client.snapshot(), port: 0, pushMs: 100 });
    const page = await browser.newPage();
    try {
      await page.goto(`${view.url}/`, { waitUntil: 'load' });
      await page.waitForFunction(() => document.querySelectorAll('#tree li[data-id]').length === 3, {
        timeout: 10_000,
      });
      const restarted = await fixture.crashCounter();
      await page.waitForFunction(
        (pid) => document.querySelector('#tree li[data-id="counter"]')?.getAttribute('data-pid') === pid,
        { timeout: 10_000 },
        String(restarted.pid),
      );
      expect(await page.$eval('#status', (element) => element.textContent)).toMatch(
        /^zbmd@attached .* restarts 1/,
      );
    } finally {
      await page.close();
      await view.close();
      client.close();
      await control.close();
      observer.stop();
      fixture.system.shutdown();
    }
  });

  it('zbmd train --view: the training tree, its restarts and the loss curve while it trains', async () => {
    const notices: string[] = [];
    const observation = await observeTraining(
      { view: true, control: join(directory, 'train.sock'), logLevel: 'silent' },
      (line) => notices.push(line),
    );
    expect(notices.at(-1)).toBe(`zbmd: web view on ${observation.view!.url}/`);
    const training = train({
      ...observation.hooks,
      model: 'mlp',
      data: TINY_DATASET_DIR,
      batchSize: 4,
      maxSteps: 1500,
      seed: 3,
      faults: 'actorCrashRate=0.02,seed=3',
      devices: [new CpuBackend(0).info()],
    }).finally(() => observation.finish());
    const page = await browser.newPage();
    try {
      await page.goto(`${observation.view!.url}/`, { waitUntil: 'load' });
      await page.waitForFunction(
        () =>
          document.querySelectorAll('#tree li[data-id]').length === 6 &&
          document.querySelectorAll('#tree .restarts').length > 0 &&
          (window as unknown as { zbmdCharts: { loss: { data: number[][] } } }).zbmdCharts.loss.data[1]
            .length > 10,
        { timeout: 20_000 },
      );
      const ids = await page.$$eval('#tree li[data-id]', (items) =>
        items.map((item) => item.getAttribute('data-id')),
      );
      expect(ids).toEqual(['root', 'model', 'optimizer', 'dataloader', 'checkpoint', 'metrics']);
      expect(await page.$eval('#devices', (element) => element.textContent)).toContain('cpu:0');
    } finally {
      await page.close();
    }
    const result = await training;
    expect(result.lostSteps).toBe(0);
  });
});
