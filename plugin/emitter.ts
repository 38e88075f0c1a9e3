/**
 * A small typed event emitter. The plugin does not use Phaser's emitter, so
 * it runs unchanged under Phaser 3 and Phaser 4 and in Node tests.
 */
export type Listener<T> = (payload: T) => void;

export class TypedEmitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return this;
  }

  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapper: Listener<Events[K]> = (payload) => {
      this.off(event, wrapper);
      listener(payload);
    };
    return this.on(event, wrapper);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    this.listeners.get(event)?.delete(listener as Listener<never>);
    return this;
  }

  removeAllListeners(): this {
    this.listeners.clear();
    return this;
  }

  /**
   * Calls every listener of `event` with `payload`. A listener that throws
   * is reported through `onListenerError` and does not stop the others.
   */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;

    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (error) {
        this.onListenerError(String(event), error);
      }
    }
  }

  protected onListenerError(event: string, error: unknown): void {
    queueMicrotask(() => {
      throw error instanceof Error ? error : new Error(`listener of ${event} threw ${String(error)}`);
    });
  }
}
