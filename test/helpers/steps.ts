/**
 * Tests that are steps of one cycle (install, then upgrade, then remove…): once a step fails, the
 * later ones build on nothing, so they are skipped with the name of the step that failed.
 */
import { it, type TestContext } from 'vitest';

/** Returns `step(name, fn)`, an `it` that is skipped once an earlier step of the same cycle failed. */
export function cycleSteps(): (name: string, fn: () => Promise<void>) => void {
  let failed: string | undefined;
  return (name, fn) =>
    it(name, async (ctx: TestContext) => {
      if (failed) ctx.skip(`an earlier step failed: ${failed}`);
      try {
        await fn();
      } catch (err) {
        failed = name;
        throw err;
      }
    });
}
