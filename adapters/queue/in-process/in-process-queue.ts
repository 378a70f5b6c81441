/**
 * JobQueue inside one process (the embedded default): a FIFO with a concurrency limit, delayed redelivery,
 * and a bounded retry with backoff when a handler throws. It keeps nothing on disk; after a restart the
 * worker's first sweep re-enqueues every queued analysis from the store.
 */
import type {
  ConsumeOptions,
  JobConsumer,
  JobHandler,
  JobQueue,
} from '../../../domain/ports/job-queue.port.ts';

export interface InProcessQueueOptions {
  /** Delays before redelivering after a handler threw; its length bounds the retries (default 1, 5, 30 s). */
  readonly retryDelaysMs?: readonly number[];
  /** Called when a handler throws (for logging). */
  readonly onError?: (analysisId: string, error: unknown) => void;
}

interface Entry {
  readonly id: string;
  readonly delivery: number;
}

export class InProcessJobQueue implements JobQueue {
  readonly #retryDelays: readonly number[];
  readonly #onError: (analysisId: string, error: unknown) => void;
  readonly #waiting: Entry[] = [];
  readonly #delayed = new Map<string, NodeJS.Timeout>();
  readonly #active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  #handler: JobHandler | undefined;
  #concurrency = 1;
  #stopped = false;
  #closed = false;

  constructor(options: InProcessQueueOptions = {}) {
    this.#retryDelays = options.retryDelaysMs ?? [1000, 5000, 30_000];
    this.#onError = options.onError ?? (() => undefined);
  }

  #known(id: string): boolean {
    return this.#active.has(id) || this.#delayed.has(id) || this.#waiting.some((e) => e.id === id);
  }

  enqueue(analysisId: string, options: { readonly delayMs?: number } = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('queue closed'));
    if (!this.#known(analysisId)) this.#schedule({ id: analysisId, delivery: 1 }, options.delayMs ?? 0);
    return Promise.resolve();
  }

  #schedule(entry: Entry, delayMs: number): void {
    if (delayMs <= 0) {
      this.#waiting.push(entry);
      this.#pump();
      return;
    }
    const t = setTimeout(() => {
      this.#delayed.delete(entry.id);
      this.#waiting.push(entry);
      this.#pump();
    }, delayMs);
    this.#delayed.set(entry.id, t);
  }

  #pump(): void {
    const handler = this.#handler;
    if (handler === undefined || this.#stopped) return;
    while (this.#active.size < this.#concurrency) {
      const entry = this.#waiting.shift();
      if (entry === undefined) return;
      const abort = new AbortController();
      const done = (async () => {
        let redeliverIn: number | undefined;
        let delivery = entry.delivery;
        try {
          let retryIn: number | undefined;
          await handler(entry.id, {
            signal: abort.signal,
            delivery: entry.delivery,
            retryLater(ms) {
              retryIn = Math.max(0, ms);
            },
          });
          if (retryIn !== undefined) {
            redeliverIn = retryIn;
            delivery = 1;
          }
        } catch (e) {
          this.#onError(entry.id, e);
          if (entry.delivery <= this.#retryDelays.length) {
            redeliverIn = this.#retryDelays[entry.delivery - 1];
            delivery = entry.delivery + 1;
          }
        } finally {
          this.#active.delete(entry.id);
        }
        if (redeliverIn !== undefined && !this.#stopped)
          this.#schedule({ id: entry.id, delivery }, redeliverIn);
        this.#pump();
      })();
      this.#active.set(entry.id, { abort, done });
    }
  }

  consume(handler: JobHandler, options: ConsumeOptions): JobConsumer {
    if (this.#handler !== undefined) throw new Error('this queue already has a consumer');
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError('concurrency must be an integer ≥ 1');
    this.#handler = handler;
    this.#concurrency = options.concurrency;
    this.#stopped = false;
    queueMicrotask(() => {
      this.#pump();
    });
    return { stop: (graceMs) => this.#stop(graceMs) };
  }

  async #stop(graceMs = 30_000): Promise<void> {
    this.#stopped = true;
    for (const t of this.#delayed.values()) clearTimeout(t);
    this.#delayed.clear();
    const running = [...this.#active.values()];
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(running.map((r) => r.done)), grace]);
    clearTimeout(timer);
    for (const r of running) r.abort.abort();
    await Promise.all(running.map((r) => r.done));
    this.#handler = undefined;
  }

  pendingCount(): Promise<number> {
    return Promise.resolve(this.#waiting.length + this.#delayed.size);
  }

  ping(): Promise<void> {
    return this.#closed ? Promise.reject(new Error('queue closed')) : Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.#handler !== undefined) await this.#stop(0);
    this.#stopped = true;
    for (const t of this.#delayed.values()) clearTimeout(t);
    this.#delayed.clear();
    this.#closed = true;
  }
}
