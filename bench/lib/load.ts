// Load generators: a closed loop (a fixed number of requests in flight) for
// throughput, and an open loop (requests started on a fixed schedule) for
// latency at a given rate.

/**
 * Runs calls of `call(index)` with `concurrency` in flight until `total` calls
 * have started or `maxMs` has passed, whichever comes first, and waits for
 * the calls in flight. Returns the completed calls, the failures and the
 * elapsed ms.
 */
export async function closedLoop(
  total: number,
  concurrency: number,
  call: (index: number) => Promise<void>,
  maxMs = Number.POSITIVE_INFINITY,
): Promise<{ elapsedMs: number; completed: number; failures: number; firstError?: string }> {
  let next = 0;
  let completed = 0;
  let failures = 0;
  let firstError: string | undefined;
  const startedAt = performance.now();
  const deadline = startedAt + maxMs;

  const worker = async (): Promise<void> => {
    while (next < total && performance.now() < deadline) {
      const index = next++;
      try {
        await call(index);
        completed++;
      } catch (error) {
        failures++;
        firstError ??= String((error as Error)?.message ?? error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, () => worker()));
  return { elapsedMs: performance.now() - startedAt, completed, failures, firstError };
}

/**
 * Starts `call(index)` at `ratePerSecond` for `durationMs` and returns each
 * call's latency in ms, measured from the time it was due (not the time the
 * timer fired), so a stalled event loop shows as latency instead of hiding
 * it (coordinated omission). When more than `maxInFlight` calls are waiting,
 * the server cannot keep up with the rate: the due calls are skipped and
 * counted instead of queueing without bound.
 */
export async function openLoop(
  ratePerSecond: number,
  durationMs: number,
  call: (index: number) => Promise<void>,
  maxInFlight = ratePerSecond,
): Promise<{ latenciesMs: number[]; failures: number; skipped: number; firstError?: string; elapsedMs: number }> {
  const total = Math.round((ratePerSecond * durationMs) / 1000);
  const intervalMs = 1000 / ratePerSecond;
  const latencies: number[] = [];
  const calls: Promise<void>[] = [];
  let inFlight = 0;
  let failures = 0;
  let skipped = 0;
  let firstError: string | undefined;
  const startedAt = performance.now();

  for (let index = 0; index < total; index++) {
    const dueAt = startedAt + index * intervalMs;
    const wait = dueAt - performance.now();
    if (wait > 1) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    inFlight++;
    calls.push(
      call(index).then(
        () => {
          inFlight--;
          latencies.push(performance.now() - dueAt);
        },
        (error: unknown) => {
          inFlight--;
          failures++;
          firstError ??= String((error as Error)?.message ?? error);
        },
      ),
    );
  }
  await Promise.all(calls);
  return { latenciesMs: latencies, failures, skipped, firstError, elapsedMs: performance.now() - startedAt };
}
