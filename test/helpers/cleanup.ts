/**
 * Runs every cleanup step of an `after` hook even when some fail (a `before` hook that failed half-way leaves
 * later resources unset: their step throws a TypeError, which must not skip stopping the servers started
 * earlier, or the test process never exits). Throws the first error after all steps ran.
 */
export async function cleanup(...steps: (() => unknown)[]): Promise<void> {
  let first: unknown;
  let failed = false;
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      if (!failed) first = e;
      failed = true;
    }
  }
  if (failed) throw first;
}
