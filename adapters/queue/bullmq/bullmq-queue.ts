/**
 * JobQueue on Redis with BullMQ: for many worker processes on many hosts. The BullMQ job id is the analysis id,
 * so enqueueing an id that is already waiting, delayed or active is a no-op. A handler's `retryLater(ms)` moves
 * the job to the delayed set; a throw fails the attempt and BullMQ retries it with an exponential backoff.
 * Finished jobs are removed (the store keeps the history), so the same id can be enqueued again later.
 * A crashed worker's active job is moved back to waiting by BullMQ's stalled-job check; the store's claim
 * makes sure it never runs twice at once.
 */
import { DelayedError, Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type {
  ConsumeOptions,
  JobConsumer,
  JobHandler,
  JobQueue,
} from '../../../domain/ports/job-queue.port.ts';

export interface BullMqQueueOptions {
  /** redis://[user:pass@]host:port[/db] */
  readonly redisUrl: string;
  /** Key prefix (namespace) in Redis (default 'mslesion'). */
  readonly prefix?: string;
  /** Queue name (default 'analyses'). */
  readonly queueName?: string;
  /** BullMQ attempts for handler throws (default 5) and the first backoff delay (default 1000 ms). */
  readonly attempts?: number;
  readonly backoffMs?: number;
  /** Called when a handler throws (for logging). */
  readonly onError?: (analysisId: string, error: unknown) => void;
  /**
   * BullMQ's job lock and stalled-job check period (default 30 s): a dead worker's active job goes back to
   * waiting within about twice this. Keep it near the store's lease.
   */
  readonly lockMs?: number;
}

interface JobData {
  readonly analysisId: string;
}

export function redisConnection(url: string): ConnectionOptions {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new TypeError(`not a redis URL: ${url}`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  return {
    host: u.hostname,
    port: u.port === '' ? 6379 : Number(u.port),
    ...(u.username === '' ? {} : { username: decodeURIComponent(u.username) }),
    ...(u.password === '' ? {} : { password: decodeURIComponent(u.password) }),
    db,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
  };
}

export class BullMqJobQueue implements JobQueue {
  readonly #connection: ConnectionOptions;
  readonly #prefix: string;
  readonly #name: string;
  readonly #queue: Queue<JobData>;
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #onError: (analysisId: string, error: unknown) => void;
  readonly #lockMs: number;
  #worker: Worker<JobData> | undefined;
  readonly #active = new Map<string, AbortController>();

  constructor(options: BullMqQueueOptions) {
    this.#connection = redisConnection(options.redisUrl);
    this.#prefix = options.prefix ?? 'mslesion';
    this.#name = options.queueName ?? 'analyses';
    this.#attempts = options.attempts ?? 5;
    this.#backoffMs = options.backoffMs ?? 1000;
    this.#onError = options.onError ?? (() => undefined);
    this.#lockMs = options.lockMs ?? 30_000;
    this.#queue = new Queue<JobData>(this.#name, { connection: this.#connection, prefix: this.#prefix });
    // Connection errors surface through ping/enqueue; an unhandled 'error' event must not crash the process.
    this.#queue.on('error', () => undefined);
  }

  async enqueue(analysisId: string, options: { readonly delayMs?: number } = {}): Promise<void> {
    await this.#queue.add(
      'analysis',
      { analysisId },
      {
        jobId: analysisId,
        delay: Math.max(0, options.delayMs ?? 0),
        attempts: this.#attempts,
        backoff: { type: 'exponential', delay: this.#backoffMs },
        removeOnComplete: true,
        removeOnFail: true,
      },
    );
  }

  consume(handler: JobHandler, options: ConsumeOptions): JobConsumer {
    if (this.#worker !== undefined) throw new Error('this queue already has a consumer');
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError('concurrency must be an integer ≥ 1');
    const worker = new Worker<JobData>(
      this.#name,
      async (job: Job<JobData>, token?: string) => {
        const id = job.data.analysisId;
        const abort = new AbortController();
        this.#active.set(id, abort);
        try {
          let retryIn: number | undefined;
          await handler(id, {
            signal: abort.signal,
            delivery: job.attemptsMade + 1,
            retryLater(ms) {
              retryIn = Math.max(0, ms);
            },
          });
          if (retryIn !== undefined) {
            await job.moveToDelayed(Date.now() + retryIn, token);
            throw new DelayedError();
          }
        } catch (e) {
          if (!(e instanceof DelayedError)) this.#onError(id, e);
          throw e;
        } finally {
          this.#active.delete(id);
        }
      },
      {
        connection: this.#connection,
        prefix: this.#prefix,
        concurrency: options.concurrency,
        lockDuration: this.#lockMs,
        stalledInterval: this.#lockMs,
        maxStalledCount: 5,
      },
    );
    worker.on('error', () => undefined);
    this.#worker = worker;
    return { stop: (graceMs) => this.#stop(graceMs) };
  }

  async #stop(graceMs = 30_000): Promise<void> {
    const worker = this.#worker;
    if (worker === undefined) return;
    const closing = worker.close();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([closing, grace]);
    clearTimeout(timer);
    for (const a of this.#active.values()) a.abort();
    await closing;
    this.#worker = undefined;
  }

  async pendingCount(): Promise<number> {
    const c = await this.#queue.getJobCounts('waiting', 'delayed', 'prioritized');
    return c.waiting + c.delayed + c.prioritized;
  }

  async ping(): Promise<void> {
    const client = await this.#queue.backend.client;
    if (client.status !== 'ready') throw new Error(`redis connection is ${client.status}`);
    await this.#queue.getJobCounts('waiting');
  }

  /** Deletes every key of this queue (tests, decommissioning). */
  async obliterate(): Promise<void> {
    await this.#queue.obliterate({ force: true });
  }

  async close(): Promise<void> {
    await this.#stop(0);
    await this.#queue.close();
  }
}
