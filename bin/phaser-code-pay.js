#!/usr/bin/env node
// The `phaser-code-pay` command. It runs the compiled CLI from dist/, which
// `npm install` builds through the `prepare` script.
import { main } from '../dist/server/cli.js';

main(process.argv.slice(2)).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
