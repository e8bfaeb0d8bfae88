/** Building compositions from TOML text in tests, with a log that records every line. */
import { Composition } from "../../src/composition/composition.js";
import { CompositionConfig } from "../../src/composition/config.js";
import { parseConfigText } from "../../src/composition/config-file.js";
import type { Registry } from "../../src/composition/registry.js";
import { Logger, type LogRecord, parseLogSpec } from "../../src/observability/log.js";
import { testRegistry } from "./test-types.js";

export interface TestComposition {
  readonly composition: Composition;
  /** Every log record of the composition's instances (all levels). */
  readonly logs: LogRecord[];
}

/** A composition of `toml`, built with the test registry (latency, faulty) unless given one. */
export function compose(toml: string, registry: Registry = testRegistry()): TestComposition {
  const logs: LogRecord[] = [];
  const log = new Logger({
    module: "composition",
    filter: parseLogSpec("trace"),
    sink: (r) => logs.push(r),
  });
  const config = CompositionConfig.parse(parseConfigText(toml, "toml"), { registry });
  return { composition: new Composition(config, { log }), logs };
}

/** Resolves after the pending microtasks and one macrotask (abort handlers ran). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
