// Runs the `phaser-code-pay` command from source, without a build:
// `node --import tsx server/cli-entry.ts sandbox`.
import { main } from './cli.js';

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
