// Builds the browser bundles of the sandbox's wallet and elements pages into
// dist/sandbox-web/, where server/sandbox/pages.ts serves them. Run by
// `npm run build` after tsc.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webDir = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: webDir,
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: resolve(webDir, '../../../dist/sandbox-web'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    rollupOptions: {
      input: {
        wallet: resolve(webDir, 'wallet.ts'),
        elements: resolve(webDir, 'elements.ts'),
      },
      output: {
        entryFileNames: '[name].js',
        chunkFileNames: 'chunks/[name]-[hash].js',
        assetFileNames: 'assets/[name]-[hash][extname]',
      },
    },
  },
});
