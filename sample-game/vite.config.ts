// Vite build of the sample game client: sample-game/index.html and src/ into
// sample-game/dist, which the game server serves. Relative asset URLs let
// the game work under any path prefix.

import { fileURLToPath } from 'node:url';

import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: './',
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The main chunk (Phaser, the plugin and the game) is about 1.6 MB
    // minified, over Vite's 500 kB warning, and one chunk keeps start-up simple.
    chunkSizeWarningLimit: 2500,
  },
});
