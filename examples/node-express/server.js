// Slipway example: an Express app. Change VERSION to see a new release.
const express = require("express");
const fs = require("fs");

const VERSION = "1";
const port = Number(process.env.PORT || 8080);
const app = express();

function buildInfo() {
  try {
    return JSON.parse(fs.readFileSync(`${__dirname}/build-info.json`, "utf8"));
  } catch {
    return { builtAt: "not built" };
  }
}

app.get("/healthz", (_req, res) => res.type("text").send("ok\n"));

app.get("/", (_req, res) => {
  const info = buildInfo();
  res.type("html").send(
    `<!doctype html><title>node-express</title>` +
      `<h1>node-express</h1><p>VERSION ${VERSION}</p>` +
      `<p>built ${info.builtAt} with node ${info.node || "?"}</p>\n`,
  );
});

const server = app.listen(port, "0.0.0.0", () => {
  console.log(`node-express VERSION ${VERSION} listening on :${port}`);
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
