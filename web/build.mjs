// Builds the dashboard into dist/: one hashed JS bundle and one hashed CSS
// file under dist/assets/ (cached for a year by slipway-api), a gzip twin
// of each, and an index.html that names them (never cached). No inline
// script or style anywhere: the API's Content-Security-Policy forbids both.
import * as esbuild from "esbuild";
import { gzipSync } from "node:zlib";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { join, basename } from "node:path";

const out = process.env.SLIPWAY_WEB_OUT || "dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

const result = await esbuild.build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2020"],
  outdir: join(out, "assets"),
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  legalComments: "none",
  logLevel: "warning",
});

const files = Object.keys(result.metafile.outputs).map((f) => basename(f));
const js = files.find((f) => f.endsWith(".js"));
const css = files.find((f) => f.endsWith(".css"));
if (!js || !css) throw new Error(`expected one .js and one .css, got ${files}`);

const index = readFileSync("src/index.html", "utf8")
  .replace("%CSS%", `/assets/${css}`)
  .replace("%JS%", `/assets/${js}`);
writeFileSync(join(out, "index.html"), index);
copyFileSync("src/favicon.svg", join(out, "favicon.svg"));

let total = 0;
for (const name of readdirSync(join(out, "assets"))) {
  const path = join(out, "assets", name);
  const zipped = gzipSync(readFileSync(path), { level: 9 });
  writeFileSync(`${path}.gz`, zipped);
  total += zipped.length;
  console.log(`  ${name}: ${zipped.length} bytes gzipped`);
}
console.log(`dashboard built in ${out}/ (${total} bytes of JS and CSS gzipped)`);
