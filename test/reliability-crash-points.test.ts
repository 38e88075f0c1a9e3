// The arming of crash points from the environment: unarmed by default, and
// an invalid value stops start-up instead of silently disarming a test.

import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { CRASH_POINTS, readCrashArming } from '../server/crash-points.js';

const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '..');

describe('crash point arming', () => {
  it('is unarmed without the variable', () => {
    expect(readCrashArming({})).toBeUndefined();
    expect(readCrashArming({ CODE_PAY_CRASH_POINT: '  ' })).toBeUndefined();
  });

  it('arms named points and every point', () => {
    const named = readCrashArming({ CODE_PAY_CRASH_POINT: 'after-send-message, inside-grant-transaction', CODE_PAY_CRASH_AFTER: '2', CODE_PAY_CRASH_PROBABILITY: '0.5' });
    expect([...(named?.points ?? [])]).toEqual(['after-send-message', 'inside-grant-transaction']);
    expect(named?.survivePasses).toBe(2);
    expect(named?.probability).toBe(0.5);

    expect([...(readCrashArming({ CODE_PAY_CRASH_POINT: '*' })?.points ?? [])]).toEqual([...CRASH_POINTS]);
  });

  it('rejects invalid values with the variable name', () => {
    expect(() => readCrashArming({ CODE_PAY_CRASH_POINT: 'after-sendmessage' })).toThrow(/CODE_PAY_CRASH_POINT "after-sendmessage"/);
    expect(() => readCrashArming({ CODE_PAY_CRASH_POINT: '*', CODE_PAY_CRASH_PROBABILITY: '2' })).toThrow(/CODE_PAY_CRASH_PROBABILITY/);
    expect(() => readCrashArming({ CODE_PAY_CRASH_POINT: '*', CODE_PAY_CRASH_AFTER: '-1' })).toThrow(/CODE_PAY_CRASH_AFTER/);
  });

  it('kills the process with SIGKILL when it fires', () => {
    const script = "import { crashPoint } from './server/crash-points.ts'; crashPoint('after-grant-commit'); console.log('survived');";
    const armed = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPOSITORY_ROOT,
      env: { ...process.env, CODE_PAY_CRASH_POINT: 'after-grant-commit' },
      encoding: 'utf8',
    });
    expect(armed.signal).toBe('SIGKILL');
    expect(armed.stderr).toContain('code-pay crash point fired: after-grant-commit');
    expect(armed.stdout).not.toContain('survived');

    const unarmed = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: REPOSITORY_ROOT,
      env: { ...process.env, CODE_PAY_CRASH_POINT: 'after-send-message' },
      encoding: 'utf8',
    });
    expect(unarmed.status).toBe(0);
    expect(unarmed.stdout).toContain('survived');
  });
});
