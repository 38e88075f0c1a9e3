// Runs a benchmark server in a child process (Node with the tsx loader) and
// talks to it over the IPC channel, so the server's memory and CPU are
// measured apart from the load generator's.

import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const serversFolder = join(dirname(fileURLToPath(import.meta.url)), '..', 'servers');

/** A message from a server child; one with an `id` is the response to the request with the same id. */
export interface ChildMessage {
  id?: number;
  type: string;
  [field: string]: unknown;
}

export interface BenchChild {
  /** The `ready` message, with the server's URLs. */
  ready: ChildMessage;
  /** Sends `{ type, ...fields }` and returns the child's response. */
  request(type: string, fields?: Record<string, unknown>): Promise<ChildMessage>;
  /** Returns the child's resident memory in bytes (`process.memoryUsage().rss`). */
  rss(): Promise<number>;
  /** Returns the child's CPU time so far, user + system, in µs (`process.cpuUsage()`). */
  cpuMicros(): Promise<number>;
  /** Asks the child to close its server and waits for it to exit. */
  stop(): Promise<void>;
  process: ChildProcess;
}

/**
 * Starts `bench/servers/<script>` with `config` as its JSON argument and waits
 * for its `ready` message. The child's stderr passes through, so its
 * failures show in the benchmark's output.
 */
export async function startChild(script: string, config: Record<string, unknown>, nodeOptions: string[] = []): Promise<BenchChild> {
  const child = fork(join(serversFolder, script), [JSON.stringify(config)], {
    execArgv: ['--import', 'tsx', ...nodeOptions],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });

  let nextId = 1;
  const waiting = new Map<number, { resolve: (message: ChildMessage) => void; reject: (error: Error) => void }>();
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      for (const { reject } of waiting.values()) {
        reject(new Error(`${script} exited (code ${code}, signal ${signal}) before it responded`));
      }
      waiting.clear();
      resolve();
    });
  });

  const ready = await new Promise<ChildMessage>((resolve, reject) => {
    const onMessage = (message: ChildMessage) => {
      if (message.type === 'ready') {
        child.off('message', onMessage);
        resolve(message);
      } else if (message.type === 'failed') {
        reject(new Error(`${script} failed to start: ${String(message.error)}`));
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`${script} exited with code ${code} before it was ready`)));
  });

  child.on('message', (message: ChildMessage) => {
    if (message.id !== undefined) {
      const pending = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.type === 'error') {
        pending?.reject(new Error(`${script}: ${String(message.error)}`));
      } else {
        pending?.resolve(message);
      }
    }
  });

  const request = (type: string, fields: Record<string, unknown> = {}): Promise<ChildMessage> => {
    if (exited) {
      return Promise.reject(new Error(`${script} has exited`));
    }
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      child.send({ id, type, ...fields });
    });
  };

  return {
    ready,
    request,
    process: child,
    async rss() {
      const answer = await request('rss');
      return Number(answer.rss);
    },
    async cpuMicros() {
      const answer = await request('cpu');
      const cpu = answer.cpu as { user: number; system: number };
      return cpu.user + cpu.system;
    },
    async stop() {
      if (!exited) {
        await request('close').catch(() => undefined);
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exitPromise;
        clearTimeout(timer);
      }
    },
  };
}

/** Serves the parent's requests in a child: `handlers[type]` returns the fields of the response. */
export function serveParent(handlers: Record<string, (message: ChildMessage) => Promise<Record<string, unknown>> | Record<string, unknown>>): void {
  // A benchmark that crashed or was killed leaves no server behind.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: ChildMessage) => {
    const handler = handlers[message.type];
    if (!handler) {
      process.send?.({ id: message.id, type: 'error', error: `unknown request type ${message.type}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message))
      .then(
        (answer) => process.send?.({ id: message.id, type: 'answer', ...answer }),
        (error: unknown) => process.send?.({ id: message.id, type: 'error', error: String((error as Error)?.stack ?? error) }),
      );
  });
}

/** Reads the JSON configuration a child was started with. */
export function childConfig<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}
