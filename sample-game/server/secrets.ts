// Secrets the server generates on first start and keeps in its data
// directory, so guest tokens stay valid across restarts.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

export const TOKEN_SECRET_FILE = 'sample-game-token-secret';

/** Shortest stored secret accepted: 32 hex characters (16 bytes). */
const MIN_SECRET_LENGTH = 32;

/**
 * Creates the data directory if needed. A directory created here also gets a
 * `.gitignore` that ignores everything in it, because it contains secrets.
 */
export async function prepareDataDirectory(directory: string): Promise<void> {
  const created = await fs.mkdir(directory, { recursive: true });
  if (created !== undefined) {
    await fs.writeFile(path.join(directory, '.gitignore'), '# Written by the sample game server: databases and secrets.\n*\n');
  }
}

/**
 * Returns the secret stored in `file`, creating it (32 random bytes in hex,
 * mode 0600) when it does not exist. Two processes starting at once end up
 * with the same secret, because the file is created exclusively.
 */
export async function readOrCreateSecretFile(file: string): Promise<string> {
  const stored = await readSecretFile(file);
  if (stored !== undefined) {
    return stored;
  }

  const generated = randomBytes(32).toString('hex');
  try {
    await fs.writeFile(file, `${generated}\n`, { mode: 0o600, flag: 'wx' });
    return generated;
  } catch (error) {
    if (!isErrorCode(error, 'EEXIST')) {
      throw error;
    }
  }

  const winner = await readSecretFile(file);
  if (winner === undefined) {
    throw new Error(`The secret file ${file} vanished while it was being created; start the server again.`);
  }
  return winner;
}

async function readSecretFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = (await fs.readFile(file, 'utf8')).trim();
  } catch (error) {
    if (isErrorCode(error, 'ENOENT')) {
      return undefined;
    }
    throw error;
  }

  if (text.length < MIN_SECRET_LENGTH) {
    throw new Error(`The secret in ${file} is shorter than ${MIN_SECRET_LENGTH} characters; delete the file to generate a new one.`);
  }
  return text;
}

function isErrorCode(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
