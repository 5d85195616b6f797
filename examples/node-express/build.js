// The build step: writes build-info.json, which the server shows on its page,
// so a deployment proves that `npm run build` ran inside the image.
const fs = require("fs");

fs.writeFileSync(
  "build-info.json",
  JSON.stringify({ builtAt: new Date().toISOString(), node: process.version }) + "\n",
);
console.log("build: wrote build-info.json");
