// Row 8 of docs/BENCHMARKS.md: the plugin's bundle size, gzip. esbuild
// bundles `plugin/index.ts` for the browser (ESM, minified, code splitting)
// with Phaser and `@code-wallet/elements` external, as a game's bundler
// would leave them to the game and to the elements sheet's lazy import. The
// figure is the gzip size (level 9) of the entry chunk plus every chunk it
// imports statically. Chunks reached only through `import()` (the scan-code
// encoder, the rendezvous key, the message stream) load when a canvas sheet
// opens, so they are listed apart.
//
// Run with `npx tsx bench/bundle-size.ts`. Writes bench/results/bundle-size.json.

import { readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import { build, type Metafile } from 'esbuild';

import { writeResults } from './lib/results.js';
import { createBenchFolder } from './lib/setup.js';
import { machineFacts, round } from './lib/stats.js';

const EXTERNAL = ['phaser', '@code-wallet/elements'];

function gzipBytes(path: string): number {
  return gzipSync(readFileSync(path), { level: 9 }).length;
}

/** Returns the outputs reachable from `entry` through static imports, the entry included. */
function staticClosure(metafile: Metafile, entry: string): string[] {
  const seen = new Set<string>();
  const visit = (output: string) => {
    if (seen.has(output)) {
      return;
    }
    seen.add(output);
    for (const imported of metafile.outputs[output]?.imports ?? []) {
      if (imported.kind === 'import-statement' && !imported.external) {
        visit(imported.path);
      }
    }
  };
  visit(entry);
  return [...seen];
}

/** Bundles the plugin with `external` left out and measures the initial and lazily loaded chunks. */
async function measure(external: string[]) {
  const folder = createBenchFolder('bundle');
  try {
    const result = await build({
      entryPoints: { plugin: 'plugin/index.ts' },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      outdir: folder.path,
      external,
      metafile: true,
      logLevel: 'warning',
    });
    const metafile = result.metafile;
    const outputs = Object.keys(metafile.outputs).filter((output) => output.endsWith('.js'));
    const entry = outputs.find((output) => metafile.outputs[output].entryPoint !== undefined);
    if (entry === undefined) {
      throw new Error('esbuild produced no entry chunk for plugin/index.ts');
    }

    const initial = staticClosure(metafile, entry);
    const lazy = outputs.filter((output) => !initial.includes(output));
    const describe = (output: string) => ({
      file: basename(output),
      bytes: metafile.outputs[output].bytes,
      gzipBytes: gzipBytes(output),
    });
    const initialFiles = initial.map(describe);
    const lazyFiles = lazy.map(describe);
    const initialGzipBytes = initialFiles.reduce((sum, file) => sum + file.gzipBytes, 0);

    // Minified bytes of the initial chunks by package, to show where the size comes from.
    const byPackage: Record<string, number> = {};
    for (const output of initial) {
      for (const [input, { bytesInOutput }] of Object.entries(metafile.outputs[output].inputs)) {
        const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
        const name = match ? match[1] : relative(process.cwd(), input).split('/')[0];
        byPackage[name] = (byPackage[name] ?? 0) + bytesInOutput;
      }
    }
    return {
      initialGzipBytes,
      initialFiles,
      lazyFiles,
      initialMinifiedBytesByPackage: Object.fromEntries(Object.entries(byPackage).sort((a, b) => b[1] - a[1])),
    };
  } finally {
    folder.remove();
  }
}

/** Packages whose share of the initial gzip size the script reports, by bundling without each. */
const CONTRIBUTORS = ['socket.io-client', 'zod', 'pino'];

async function main(): Promise<void> {
  const bundle = await measure(EXTERNAL);
  const gzipWithout: Record<string, number> = {};
  for (const name of CONTRIBUTORS) {
    const variant = await measure([...EXTERNAL, name]);
    gzipWithout[name] = bundle.initialGzipBytes - variant.initialGzipBytes;
  }

  const results = {
    command: 'npx tsx bench/bundle-size.ts',
    machine: machineFacts(),
    external: EXTERNAL,
    ...bundle,
    /** kB of 1,000 bytes, the unit of the target (25 kB). */
    initialGzipKB: round(bundle.initialGzipBytes / 1000),
    targetGzipBytes: 25_000,
    /** Gzip bytes the initial chunks lose when the package is left out as well. */
    gzipBytesOfPackage: gzipWithout,
  };
  console.log(results);
  console.log(`Wrote ${writeResults('bundle-size', results)}`);
}

await main();
