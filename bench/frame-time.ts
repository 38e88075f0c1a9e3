// Row 9 of docs/BENCHMARKS.md: the main-thread time per frame that the
// canvas payment sheet adds, in headless Chromium. The page
// (bench/frame-time/) runs a Phaser 4 scene with 300 moving sprites and the
// plugin against a real kit and sandbox on loopback. Windows of frames with
// the sheet open (showing the scan code of a pending purchase) alternate with
// windows without it, for the WebGL and the Canvas renderer. A last window
// shows only a translucent full-screen rectangle in a scene on top, which is
// the sheet's backdrop without the plugin. A frame's time
// is the span from Phaser's `prestep` to its `postrender` event, so it
// counts the scene updates and the draw calls issued on the main thread;
// with `--disable-gpu`, WebGL rasterizes in Chromium's GPU process
// (SwiftShader), which this span does not include.
//
// Run with `npx tsx bench/frame-time.ts [--rounds=N] [--windowSeconds=N]`.
// Writes bench/results/frame-time.json.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium, type Page } from 'playwright-core';
import { build } from 'vite';

import { parseFlags } from './lib/flags.js';
import { writeResults } from './lib/results.js';
import { createBenchFolder, startKitChild, startSandboxChild } from './lib/setup.js';
import { loadAverage, machineFacts, median, percentile, round, sleep, summarize } from './lib/stats.js';

const flags = parseFlags({
  /** Pairs of windows (one with the sheet, one without) per renderer. */
  rounds: 4,
  /** Length of one window of frames (s). */
  windowSeconds: 3,
});

const CHROMIUM_PATH = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];
const PAGE_ROOT = fileURLToPath(new URL('./frame-time/', import.meta.url));

interface FrameWindow {
  stepMs: number[];
  intervalMs: number[];
}

interface BenchHooks {
  state: { ready: boolean };
  rendererType(): string;
  openSheet(): Promise<string>;
  closeSheet(): void;
  sheetOpen(): boolean;
  openOverlay(): void;
  closeOverlay(): void;
  record(ms: number): Promise<FrameWindow>;
}

declare const codePayBench: BenchHooks;

async function measureRenderer(page: Page, url: string, renderer: 'webgl' | 'canvas') {
  await page.goto(`${url}/index.html?renderer=${renderer}`);
  await page.waitForFunction(() => typeof codePayBench !== 'undefined' && codePayBench.state.ready, undefined, { timeout: 30_000 });
  const rendererType = await page.evaluate(() => codePayBench.rendererType());

  // Warm-up: open and close the sheet once, so its lazily loaded chunks and textures are ready.
  await page.evaluate(() => codePayBench.openSheet());
  await page.evaluate(() => codePayBench.record(1_000));
  await page.evaluate(() => codePayBench.closeSheet());
  await page.evaluate(() => codePayBench.record(1_000));

  const withSheet: FrameWindow[] = [];
  const withoutSheet: FrameWindow[] = [];
  const withBackdropOnly: FrameWindow[] = [];
  const windowMs = flags.windowSeconds * 1000;
  for (let round = 0; round < flags.rounds; round++) {
    const order = round % 2 === 0 ? ['without', 'with'] : ['with', 'without'];
    for (const condition of order) {
      if (condition === 'with') {
        await page.evaluate(() => codePayBench.openSheet());
        await sleep(200);
        withSheet.push(await page.evaluate((ms) => codePayBench.record(ms), windowMs));
        await page.evaluate(() => codePayBench.closeSheet());
      } else {
        await sleep(200);
        withoutSheet.push(await page.evaluate((ms) => codePayBench.record(ms), windowMs));
      }
    }
  }
  // One shorter window with only a translucent full-screen rectangle in a scene on top, no plugin code.
  await page.evaluate(() => codePayBench.openOverlay());
  await sleep(200);
  withBackdropOnly.push(await page.evaluate((ms) => codePayBench.record(ms), windowMs));
  await page.evaluate(() => codePayBench.closeOverlay());

  const windowMedians = (windows: FrameWindow[]) => windows.map((window) => median(window.stepMs));
  const withMedians = windowMedians(withSheet);
  const withoutMedians = windowMedians(withoutSheet);
  const added = withMedians.map((value, round) => value - withoutMedians[round]);
  const allFrames = (windows: FrameWindow[]) => windows.flatMap((window) => window.stepMs);
  const allIntervals = (windows: FrameWindow[]) => windows.flatMap((window) => window.intervalMs);
  return {
    renderer: rendererType,
    withSheetStepMs: summarize(withMedians),
    withoutSheetStepMs: summarize(withoutMedians),
    addedMedianStepMs: summarize(added),
    withSheetP99StepMs: round(percentile(allFrames(withSheet), 0.99)),
    withoutSheetP99StepMs: round(percentile(allFrames(withoutSheet), 0.99)),
    withSheetMedianIntervalMs: round(median(allIntervals(withSheet))),
    withoutSheetMedianIntervalMs: round(median(allIntervals(withoutSheet))),
    backdropOnlyMedianStepMs: round(median(allFrames(withBackdropOnly)), 3),
    backdropOnlyMedianIntervalMs: round(median(allIntervals(withBackdropOnly))),
    framesWithSheet: allFrames(withSheet).length,
    framesWithoutSheet: allFrames(withoutSheet).length,
  };
}

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`${CHROMIUM_PATH} is missing: install Debian's chromium package to run the frame time benchmark.`);
  }
  const machine = machineFacts();
  const folder = createBenchFolder('frame-time');
  const pageDir = join(folder.path, 'page');
  await build({
    root: PAGE_ROOT,
    configFile: false,
    logLevel: 'error',
    build: { outDir: pageDir, emptyOutDir: true, chunkSizeWarningLimit: 10_000 },
  });

  const sandbox = await startSandboxChild(folder.path);
  const kit = await startKitChild(sandbox, folder.path, { staticDir: pageDir });
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true });
  try {
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    // Loopback only: every other request is aborted.
    await context.route('**/*', (route) =>
      /^(127\.0\.0\.1|localhost|\[::1\])$/.test(new URL(route.request().url()).hostname) ? route.continue() : route.abort(),
    );
    const page = await context.newPage();
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));

    const renderers = [];
    for (const renderer of ['webgl', 'canvas'] as const) {
      const result = await measureRenderer(page, String(kit.ready.url), renderer);
      console.log(result);
      renderers.push(result);
    }
    const path = writeResults('frame-time', {
      command: `npx tsx bench/frame-time.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine,
      chromium: browser.version(),
      loadAverage1mAfter: loadAverage(),
      flags,
      renderers,
    });
    console.log(`Wrote ${path}`);
  } finally {
    await browser.close();
    await kit.stop();
    await sandbox.stop();
    folder.remove();
  }
}

await main();
