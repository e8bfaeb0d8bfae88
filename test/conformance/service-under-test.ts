/**
 * What the conformance suites share about the service they test: how a
 * backend hands one over, and opening a fresh one per test case.
 */
import type { TestContext } from "node:test";

/** A freshly opened, empty service, as a backend's `open` returns it. */
export interface ServiceUnderTest<S> {
  service: S;
  /** Runs after the service was closed (e.g. removes its directory, stops a server). */
  teardown?: () => Promise<void>;
}

/** Opens a fresh service for test case `t`; it is closed, then torn down, when the case ends. */
export async function openForCase<S extends { close(): Promise<void> }>(
  t: TestContext,
  open: () => Promise<ServiceUnderTest<S>>,
): Promise<S> {
  const { service, teardown } = await open();
  t.after(async () => {
    await service.close();
    await teardown?.();
  });
  return service;
}
