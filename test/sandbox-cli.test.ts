// The `phaser-code-pay sandbox` command, run from source with tsx.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir } from './sandbox-helpers.js';

const ENTRY = ['--import', 'tsx', 'server/cli-entry.ts'];

let temp: ReturnType<typeof makeTempDir> | undefined;
let child: ChildProcess | undefined;

afterEach(() => {
  if (child !== undefined && child.exitCode === null) {
    child.kill('SIGKILL');
  }
  child = undefined;
  temp?.remove();
  temp = undefined;
});

/** Runs the command to completion and returns its exit code and output. */
async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const command = spawn('node', [...ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  command.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  command.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(command, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

/** Reads stdout until the start-up summary is complete. */
function waitForSummary(command: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    command.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('Press Ctrl+C to stop.')) {
        resolve(stdout);
      }
    });
    command.once('exit', (code) => reject(new Error(`sandbox exited with code ${code} before starting: ${stdout}`)));
  });
}

function field(summary: string, label: string): string {
  const match = new RegExp(`${label}:\\s+(\\S+)`).exec(summary);
  if (match === null) {
    throw new Error(`no "${label}" line in:\n${summary}`);
  }
  return match[1]!;
}

describe('phaser-code-pay sandbox', () => {
  it('prints the endpoint, wallet page and key, and stops on SIGTERM', async () => {
    temp = makeTempDir();
    child = spawn('node', [...ENTRY, 'sandbox', '--port', '0', '--data', `${temp.dir}/sandbox.db`, '--time-scale', '0.01'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });

    const summary = await waitForSummary(child);
    const endpoint = field(summary, 'endpoint');
    const walletUrl = field(summary, 'wallet page');
    const publicKey = field(summary, 'public key');

    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    expect(walletUrl).toBe(endpoint.replace(/\/v1$/, '/wallet'));
    const published = await (await fetch(endpoint.replace(/\/v1$/, '/control/public-key'))).json();
    expect(published.publicKey).toBe(publicKey);

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(0);
  });

  it('prints help', async () => {
    const result = await run(['sandbox', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--time-scale N');
    expect(result.stdout).toContain('default 8081');
  });

  it('rejects an unknown command', async () => {
    const result = await run(['serve']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Unknown command "serve"');
  });

  it('rejects a port that is not a number', async () => {
    const result = await run(['sandbox', '--port', 'eighty']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('Invalid --port "eighty"');
  });

  it('rejects an unknown option', async () => {
    const result = await run(['sandbox', '--verbose']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--verbose');
  });
});
