/** The structured logger: STRATA_LOG filters, JSON lines and readable lines. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Logger, type LogRecord, parseLogSpec, stderrSink } from "../../src/observability/log.js";

describe("STRATA_LOG", () => {
  test("a default level and per-module levels, the longest prefix winning", () => {
    const f = parseLogSpec("info,composition=debug,store.pathinfo=error,store.pathinfo.race=trace");
    assert.equal(f.levelFor("castore.blob.cache"), "info");
    assert.equal(f.levelFor("composition"), "debug");
    assert.equal(f.levelFor("compositionx"), "info", "a prefix ends at a dot");
    assert.equal(f.levelFor("store.pathinfo.priority"), "error");
    assert.equal(f.levelFor("store.pathinfo.race"), "trace");
    assert.equal(parseLogSpec(undefined).levelFor("x"), "warn", "default: warnings and errors");
    assert.equal(parseLogSpec("off").levelFor("x"), "off");
    assert.equal(parseLogSpec("loud,x=DEBUG").levelFor("x"), "debug", "unknown levels are ignored");
  });

  test("records below the level are dropped; fields and children add up", () => {
    const records: LogRecord[] = [];
    const log = new Logger({
      module: "composition",
      filter: parseLogSpec("warn,store=debug"),
      sink: (r) => records.push(r),
      fields: { run: 1 },
    });
    log.info("dropped");
    log.warn("kept", { a: 2 });
    const child = log.child("store.pathinfo.priority", { instance: "subs" });
    assert.equal(child.enabled("debug"), true);
    child.debug("also kept", { store: "x" });
    assert.deepEqual(
      records.map((r) => [r.level, r.module, r.msg, r.fields]),
      [
        ["warn", "composition", "kept", { run: 1, a: 2 }],
        ["debug", "store.pathinfo.priority", "also kept", { run: 1, instance: "subs", store: "x" }],
      ],
    );
  });

  test("JSON lines (not a TTY) and readable lines (TTY) on stderr", (t) => {
    const written: string[] = [];
    t.mock.method(process.stderr, "write", (s: string) => {
      written.push(s);
      return true;
    });
    const record: LogRecord = {
      time: "2024-01-01T00:00:00.000Z",
      level: "warn",
      module: "store.pathinfo.priority",
      msg: "store 'a' failed",
      fields: { instance: "subs", error: new Error("outer", { cause: new Error("inner") }) },
    };
    stderrSink(true)(record);
    stderrSink(false)(record);
    t.mock.restoreAll();
    assert.deepEqual(JSON.parse(written[0]!), {
      time: "2024-01-01T00:00:00.000Z",
      level: "warn",
      module: "store.pathinfo.priority",
      msg: "store 'a' failed",
      instance: "subs",
      error: "outer: inner",
    });
    assert.equal(
      written[1],
      "2024-01-01T00:00:00.000Z WARN store.pathinfo.priority [subs] store 'a' failed error=\"outer: inner\"\n",
    );
  });
});
