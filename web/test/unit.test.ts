// Unit tests of the dashboard's pure parts, run by `npm test` (node's test
// runner, on a bundle esbuild makes of this file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAnsi, stripAnsi } from "../src/ansi";
import { appendLines, LogLine } from "../src/pages/LogView";
import { installBody, Setup, validateSetup } from "../src/pages/Wizard";
import { ApiError } from "../src/api";
import { destroyable, fieldOf, installEnded, InstallStep, logStep, StepName, StepState, stepTimes } from "../src/installs";
import { sseParser } from "../src/sse";

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

const setup = (over: Partial<Setup> = {}): Setup => ({
  environment: "production", domain: "app.example.com", server_name: "", app: "web",
  git_url: "https://git.example.com/web.git", git_ref: "", ...over,
});

test("the wizard refuses bad names, domains and a missing git URL", () => {
  assert.deepEqual(validateSetup(setup()), {});
  assert.deepEqual(validateSetup(setup({ domain: "" })), {}, "the domain is optional");
  assert.deepEqual(validateSetup(setup({ server_name: "shop-1" })), {});
  const bad = validateSetup(setup({ environment: "Prod!", domain: "not a domain", app: "-web", server_name: "X", git_url: " " }));
  assert.deepEqual(Object.keys(bad).sort(), ["app", "domain", "environment", "git_url", "server_name"]);
  assert.ok(validateSetup(setup({ environment: "a".repeat(64) })).environment, "at most 63 characters");
  assert.ok(validateSetup(setup({ environment: "prod-" })).environment, "no trailing dash");
  assert.ok(validateSetup(setup({ domain: "example" })).domain, "a domain has a dot");
});

test("the install body carries optional fields only when given", () => {
  assert.deepEqual(installBody("hetzner", "main", "fsn1", "cx22", setup({ domain: "" })), {
    provider: "hetzner", account: "main", region: "fsn1", size: "cx22", environment: "production",
    app: { name: "web", git_url: "https://git.example.com/web.git" },
  });
  const full = installBody("hetzner", "main", "fsn1", "cx22", setup({ domain: "Shop.Example.com", server_name: "shop", git_ref: " v2 " }));
  assert.equal(full.domain, "shop.example.com");
  assert.equal(full.server_name, "shop");
  assert.deepEqual(full.app, { name: "web", git_url: "https://git.example.com/web.git", git_ref: "v2" });
});

test("an install refusal is shown at the field it names", () => {
  const at = (code: string, message = "") => fieldOf(new ApiError(422, code, message));
  assert.equal(at("unknown_region", "hetzner has no region `xx1`"), "region");
  assert.equal(at("size_not_in_region"), "size");
  assert.equal(at("unknown_size"), "size");
  assert.equal(at("cap_exceeded", "the project's cap of 2 servers"), "cost");
  assert.equal(at("provider_mismatch"), "provider");
  assert.equal(at("not_found", "no such cloud account"), "account");
  assert.equal(at("domain_taken"), "domain");
  assert.equal(at("validation_failed", "environment: must be 1 to 63 characters"), "environment");
  assert.equal(at("validation_failed", "app.git_url: required: the first deploy builds it"), "git_url");
  assert.equal(at("validation_failed", "app.target: the install's server is the target"), null, "not a wizard field");
  assert.equal(at("validation_failed", "server_name: must be a Name"), "server_name");
  assert.equal(at("validation_failed", "domain: not a host name"), "domain");
  assert.equal(at("conflict", "app `web` exists in this project"), "app");
  assert.equal(at("conflict", "a server or target named `shop` exists in this project"), "server_name");
  assert.equal(at("conflict", "a server or target named `app` exists in this project"), "server_name", "a name is not a kind");
  assert.equal(at("conflict", "app `server` exists in this project"), "app");
  assert.equal(at("something_new", "whatever"), null, "unknown codes go above the form");
});

const step = (name: StepName, state: StepState, operation: string | null = null): InstallStep => ({ name, state, operation });

test("the install page shows the log of the running step, else the failed one, else the last", () => {
  const op1 = "00000000-0000-0000-0000-000000000001";
  const op2 = "00000000-0000-0000-0000-000000000002";
  assert.equal(logStep([step("provision", "pending"), step("configure", "pending"), step("deploy", "pending"), step("verify", "pending")]), null);
  assert.equal(logStep([step("provision", "done", op1), step("configure", "running", op1), step("deploy", "pending"), step("verify", "pending")])?.name, "configure");
  assert.equal(logStep([step("provision", "done", op1), step("configure", "done", op1), step("deploy", "failed", op2), step("verify", "pending")])?.operation, op2);
  assert.equal(logStep([step("provision", "done", op1), step("configure", "done", op1), step("deploy", "done", op2), step("verify", "done")])?.name, "deploy");
  assert.equal(logStep([step("provision", "failed", op1), step("configure", "pending", op1), step("deploy", "pending"), step("verify", "pending")])?.name, "provision");
});

test("install statuses: which end the stream, which can be destroyed, and step times", () => {
  assert.ok(installEnded("completed") && installEnded("failed") && installEnded("destroyed"));
  assert.ok(!installEnded("deploying") && !installEnded("destroying"), "a destroy is followed to its end");
  assert.ok(destroyable("failed") && destroyable("completed") && destroyable("pending"));
  assert.ok(!destroyable("destroying") && !destroyable("destroyed"));
  const op1 = "00000000-0000-0000-0000-000000000001";
  const op2 = "00000000-0000-0000-0000-000000000002";
  const t0 = Date.parse("2026-12-05T20:00:00Z");
  const spans = {
    [op1]: { created_at: "2026-12-05T20:00:00Z", finished_at: "2026-12-05T20:01:00Z" },
    [op2]: { created_at: "2026-12-05T20:01:00Z", finished_at: null },
  };
  const steps = [step("provision", "done", op1), step("configure", "done", op1), step("deploy", "running", op2), step("verify", "pending")];
  assert.deepEqual(stepTimes(steps, spans, t0 + 65_000), [60_000, null, 5_000, null],
    "one server create shown once; a running step counts up; no operation, no time");
  assert.deepEqual(stepTimes(steps, {}, t0), [null, null, null, null], "not read yet");
});

test("the SSE parser joins data lines, keeps ids and skips keep-alives, across any chunking", () => {
  const text = ": keep-alive\n\nevent: install\nid: 7\ndata: {\"a\":\ndata: 1}\n\ndata: plain\r\n\r\n";
  for (const size of [1, 3, text.length]) {
    const seen: [string, string, string | null][] = [];
    const feed = sseParser((e, d, id) => seen.push([e, d, id]));
    for (let i = 0; i < text.length; i += size) feed(text.slice(i, i + size));
    assert.deepEqual(seen, [["install", '{"a":\n1}', "7"], ["message", "plain", null]], `chunks of ${size}`);
  }
});
