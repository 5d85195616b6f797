// Bundles the unit tests with esbuild and runs them with node's test runner.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dir = mkdtempSync(join(tmpdir(), "slipway-web-test-"));
const out = join(dir, "unit.test.mjs");
await esbuild.build({ entryPoints: ["test/unit.test.ts"], bundle: true, format: "esm", platform: "node", outfile: out, logLevel: "warning",
  // The router listens to the window's history at import; node has none.
  banner: { js: "globalThis.addEventListener ??= () => {};" } });
const run = spawnSync(process.execPath, ["--test", out], { stdio: "inherit" });
rmSync(dir, { recursive: true, force: true });
process.exit(run.status ?? 1);
