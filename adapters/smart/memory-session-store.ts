/**
 * SmartSessionStore in this process' memory: sessions until their expiry, pending launches for 10 minutes,
 * each bounded in number (the oldest go first). Tokens therefore live only in the API process that ran the
 * launch: a restart logs everyone out (they relaunch from the EHR), and several API replicas need sticky
 * sessions on /smart/* (documented in docs/dev-notes/smart-bulk.md).
 */
import type { PendingLaunch, SmartSession, SmartSessionStore } from '../../domain/ports/smart-app.port.ts';

export interface MemorySessionStoreOptions {
  readonly maxSessions?: number;
  readonly maxPending?: number;
  readonly pendingTtlMs?: number;
  readonly now?: () => number;
}

export class MemorySmartSessionStore implements SmartSessionStore {
  readonly #sessions = new Map<string, SmartSession>();
  readonly #pending = new Map<string, PendingLaunch>();
  readonly #maxSessions: number;
  readonly #maxPending: number;
  readonly #pendingTtlMs: number;
  readonly #now: () => number;

  constructor(options: MemorySessionStoreOptions = {}) {
    this.#maxSessions = options.maxSessions ?? 10_000;
    this.#maxPending = options.maxPending ?? 2_000;
    this.#pendingTtlMs = options.pendingTtlMs ?? 600_000;
    this.#now = options.now ?? Date.now;
  }

  #prune(): void {
    const t = this.#now();
    for (const [k, p] of this.#pending) if (t - p.createdAt > this.#pendingTtlMs) this.#pending.delete(k);
    for (const [k, s] of this.#sessions) if (s.expiresAt <= t) this.#sessions.delete(k);
    while (this.#pending.size > this.#maxPending)
      this.#pending.delete(this.#pending.keys().next().value ?? '');
    while (this.#sessions.size > this.#maxSessions)
      this.#sessions.delete(this.#sessions.keys().next().value ?? '');
  }

  savePending(pending: PendingLaunch): Promise<void> {
    this.#pending.set(pending.state, pending);
    this.#prune();
    return Promise.resolve();
  }

  takePending(state: string): Promise<PendingLaunch | undefined> {
    const p = this.#pending.get(state);
    this.#pending.delete(state);
    if (p === undefined || this.#now() - p.createdAt > this.#pendingTtlMs) return Promise.resolve(undefined);
    return Promise.resolve(p);
  }

  save(session: SmartSession): Promise<void> {
    this.#sessions.delete(session.id); // re-insert: the map's order is the eviction order
    this.#sessions.set(session.id, session);
    this.#prune();
    return Promise.resolve();
  }

  get(id: string): Promise<SmartSession | undefined> {
    const s = this.#sessions.get(id);
    if (s !== undefined && s.expiresAt <= this.#now()) {
      this.#sessions.delete(id);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(s);
  }

  remove(id: string): Promise<void> {
    this.#sessions.delete(id);
    return Promise.resolve();
  }

  /** Live sessions (metrics, tests). */
  get size(): number {
    return this.#sessions.size;
  }
}
