// Unit tests of the dashboard's pure parts, run by `npm test` (node's test
// runner, on a bundle esbuild makes of this file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAnsi, stripAnsi } from "../src/ansi";
import { appendLines, LogLine } from "../src/pages/LogView";
import { validateSetup } from "../src/pages/Wizard";

test("ANSI colours become classes and text stays text", () => {
  assert.deepEqual(parseAnsi("\x1b[1;31merror\x1b[0m: done"), [
    { text: "error", classes: "a-f1 a-bold" },
    { text: ": done", classes: "" },
  ]);
  assert.deepEqual(parseAnsi("\x1b[92mok\x1b[39m \x1b[44mbg"), [
    { text: "ok", classes: "a-f10" },
    { text: " ", classes: "" },
    { text: "bg", classes: "a-b4" },
  ]);
  // 256 colours: the basic 16 map, others fall back to the default.
  assert.deepEqual(parseAnsi("\x1b[38;5;3ma\x1b[38;5;200mb"), [
    { text: "a", classes: "a-f3" },
    { text: "b", classes: "a-f3" },
  ]);
  // Markup is text: the segments hold it as it is, for a text node.
  const markup = "<img src=x onerror=alert(1)>";
  assert.deepEqual(parseAnsi(markup), [{ text: markup, classes: "" }]);
  // Cursor moves and window titles are dropped.
  assert.equal(stripAnsi("\x1b]0;title\x07\x1b[2Kline\x1b[1A"), "line");
});

const line = (seq: number): LogLine => ({ seq, at: "2026-12-05T17:00:00Z", stream: "stdout", line: `l${seq}` });

test("log lines are added once each, in order", () => {
  let list = appendLines([], [line(1), line(2)]);
  list = appendLines(list, [line(2), line(3)]);
  list = appendLines(list, [line(1)]);
  assert.deepEqual(list.map((l) => l.seq), [1, 2, 3]);
  const same = appendLines(list, [line(3)]);
  assert.equal(same, list, "nothing new: the same array, no re-render");
});

test("the wizard refuses bad names and domains", () => {
  assert.deepEqual(validateSetup("production", "app.example.com", "web"), {});
  assert.deepEqual(validateSetup("production", "", "web"), {}, "the domain is optional");
  const bad = validateSetup("Prod!", "not a domain", "-web");
  assert.deepEqual(Object.keys(bad).sort(), ["app", "domain", "environment"]);
  assert.ok(validateSetup("a".repeat(64), "", "web").environment, "at most 63 characters");
  assert.ok(validateSetup("prod-", "", "web").environment, "no trailing dash");
  assert.ok(validateSetup("prod", "example", "web").domain, "a domain has a dot");
});
