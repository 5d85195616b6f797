// Slipway example: an Express app. Change VERSION to see a new release.
const express = require("express");

const VERSION = "1";
const port = Number(process.env.PORT || 8080);
const app = express();

app.get("/healthz", (_req, res) => res.type("text").send("ok\n"));

app.get("/", (_req, res) => {
  res.type("html").send(
    `<!doctype html><title>node-express</title>` +
      `<h1>node-express</h1><p>VERSION ${VERSION}</p>` +
      `<p>node ${process.version}, express ${require("express/package.json").version}</p>\n`,
  );
});

const server = app.listen(port, "0.0.0.0", () => {
  console.log(`node-express VERSION ${VERSION} listening on :${port}`);
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
