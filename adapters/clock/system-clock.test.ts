import { it } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from './system-clock.ts';

it('sleeps, and wakes early when the signal aborts', async () => {
  const t0 = Date.now();
  await systemClock.sleep(60);
  assert.ok(Date.now() - t0 >= 55);
  const abort = new AbortController();
  const t1 = Date.now();
  setTimeout(() => {
    abort.abort();
  }, 20);
  await systemClock.sleep(10_000, abort.signal);
  assert.ok(Date.now() - t1 < 5000);
  await systemClock.sleep(10_000, abort.signal); // already aborted: at once
  assert.ok(Math.abs(systemClock.now().getTime() - Date.now()) < 50);
});
