// The dashboard in a real browser (Debian's Chromium, driven by npm's
// playwright-core) against a real Slipway fleet that tests/tests/browser.rs
// started. It reads its set-up from SLIPWAY_BROWSER (JSON: url, admin and
// viewer credentials, the git URL of a repository with the branches
// `main` (prints MARK <epoch ms> lines while it builds), `feature` and
// `slow` (sleeps in its build), and the fake Hetzner API to buy servers
// from), runs the scenarios in order (or, with `only`, the sign-in and the
// scenarios whose names match that pattern), writes
// screenshots to `screenshots`, prints what it measured, and exits 1 on the
// first failure (with a screenshot of it).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../web/package.json"));
const { chromium } = require("playwright-core");

const cfg = JSON.parse(process.env.SLIPWAY_BROWSER ?? "{}");
const shots = cfg.screenshots;
mkdirSync(shots, { recursive: true });
const LONG = 240_000;
/** Who the owner invites (the run checks the link the API answers). */
const invitee = cfg.invitee ?? "newcomer@browser.test";
const log = (...a) => console.log("browser:", ...a);
/** `only`: run the scenarios whose names match (with what signs in), for working on one. */
const only = cfg.only ? new RegExp(cfg.only) : null;
const ALWAYS = new Set(["the dashboard's headers", "sign in"]);

const browser = await chromium.launch({
  executablePath: cfg.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"],
});
const failures = [];
let page;

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function step(name, fn) {
  if (only && !ALWAYS.has(name) && !only.test(name)) return log(`skip ${name}`);
  const started = Date.now();
  try {
    await fn();
    log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    log(`FAIL ${name}: ${e.stack ?? e}`);
    failures.push(name);
    if (page) await page.screenshot({ path: join(shots, `failed-${name.replace(/\W+/g, "-")}.png`), fullPage: true }).catch(() => {});
    throw e;
  }
}

/** Waits for the deployment page to show an end state; fails at once on the wrong one. */
async function ends(p, want) {
  const badge = await p.waitForSelector("h1 .badge.s-live, h1 .badge.s-failed, h1 .badge.s-cancelled", { timeout: LONG });
  const state = (await badge.textContent()).trim();
  if (state !== want) {
    const why = await p.locator("p.error").allTextContents();
    throw new Error(`the deployment ended ${state}, not ${want}: ${why.join(" ")}`);
  }
}

async function signIn(p, email, password) {
  await p.goto(`${cfg.url}/`);
  await p.waitForSelector("form.signin");
  await p.fill("input[name=email]", email);
  await p.fill("input[name=password]", password);
  await p.click("form.signin button[type=submit]");
  await p.waitForSelector("ul.projects");
}

const metrics = {};
let invitation = "";
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  const consoleErrors = [];
  // Refusals the scenarios provoke (401, 422) are logged by Chromium as
  // failed loads: those are expected; script errors are not.
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => {
    log("page error:", String(e));
    consoleErrors.push(String(e));
  });

  await step("the dashboard's headers", async () => {
    const r = await page.goto(`${cfg.url}/`);
    const h = r.headers();
    check(h["content-security-policy"]?.includes("frame-ancestors 'none'"), `CSP: ${h["content-security-policy"]}`);
    check(!h["content-security-policy"].includes("unsafe-inline"), "no unsafe-inline");
    check(h["x-content-type-options"] === "nosniff", "nosniff");
    check(h["referrer-policy"] === "no-referrer", "referrer policy");
  });

  await step("sign in", async () => {
    await page.waitForSelector("form.signin");
    await page.screenshot({ path: join(shots, "sign-in.png") });
    await page.fill("input[name=email]", cfg.admin.email);
    await page.fill("input[name=password]", "wrong password");
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector(".error >> text=invalid_credentials");
    await page.fill("input[name=password]", cfg.admin.password);
    await page.click("form.signin button[type=submit]");
    await page.waitForSelector("ul.projects");
    await page.screenshot({ path: join(shots, "projects.png") });
  });

  const base = `${cfg.url}/p/${cfg.project}`;
  await step("create an app from a git repository", async () => {
    await page.click(`ul.projects a >> text=${cfg.project}`);
    await page.waitForSelector("form[aria-label='Create an app']");
    await page.fill("form[aria-label='Create an app'] input[name=name]", "Bad Name");
    await page.click("form[aria-label='Create an app'] button[type=submit]");
    await page.waitForSelector("form[aria-label='Create an app'] .error");
    await page.fill("form[aria-label='Create an app'] input[name=name]", cfg.app);
    await page.fill("form[aria-label='Create an app'] input[name=git_url]", cfg.git_url);
    await page.fill("form[aria-label='Create an app'] input[name=git_ref]", "main");
    await page.click("form[aria-label='Create an app'] button[type=submit]");
    await page.waitForURL(`${base}/apps/${cfg.app}`);
    await page.waitForSelector(`h1 >> text=${cfg.app}`);
  });

  let first;
  await step("deploy: logs arrive live and the app goes live", async () => {
    // Every line that shows a MARK is timed the moment it is in the page.
    await page.click("button[data-action=deploy]");
    await page.waitForURL(/\/deployments\/[0-9a-f-]+$/);
    first = page.url().split("/").pop();
    await page.evaluate(() => {
      window.__marks = [];
      const seen = new Set();
      new MutationObserver(() => {
        const now = Date.now();
        for (const el of document.querySelectorAll(".line .text")) {
          const m = /MARK (\d{13}) (\d+)/.exec(el.textContent);
          if (m && !seen.has(m[2])) {
            seen.add(m[2]);
            window.__marks.push(now - Number(m[1]));
          }
        }
      }).observe(document.body, { childList: true, subtree: true });
    });
    await page.waitForSelector(".line .text >> text=/MARK \\d+ 1$/", { timeout: LONG });
    await ends(page, "live");
    const marks = await page.evaluate(() => window.__marks);
    check(marks.length >= 10, `MARK lines seen live: ${marks.length}`);
    marks.sort((a, b) => a - b);
    metrics.log_line_to_page_ms = {
      samples: marks.length,
      p50: marks[Math.floor(marks.length * 0.5)],
      p99: marks[Math.min(marks.length - 1, Math.ceil(marks.length * 0.99) - 1)],
      max: marks[marks.length - 1],
    };
    check(await page.locator(".timeline .took").count() >= 3, "time per stage shown");
    await page.screenshot({ path: join(shots, "deployment.png"), fullPage: true });
  });

  await step("the app page shows it live", async () => {
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector("h1 .badge.s-running", { timeout: LONG });
    await page.waitForSelector(`tr[data-deployment='${first}'] .tag >> text=current`);
    await page.screenshot({ path: join(shots, "app.png"), fullPage: true });
  });

  let second;
  await step("deploy another ref, then roll back in one click", async () => {
    await page.fill("form[aria-label=Deploy] input[name=git_ref]", "feature");
    await page.click("button[data-action=deploy]");
    await page.waitForURL(/\/deployments\/[0-9a-f-]+$/);
    second = page.url().split("/").pop();
    await ends(page, "live");
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector(`tr[data-deployment='${second}'] .tag >> text=current`, { timeout: LONG });
    // Live updates: the rollback's row appears and goes live with no reload.
    await page.click(`tr[data-deployment='${first}'] button[data-action=rollback]`);
    await page.waitForSelector("tr:has-text('rollback to') .badge.s-live", { timeout: LONG });
    await page.waitForSelector("tr:has-text('rollback to') .tag >> text=current", { timeout: LONG });
  });

  await step("deploy an uploaded archive", async () => {
    await page.setInputFiles("form[aria-label=Deploy] input[name=archive]", cfg.archive);
    await page.waitForURL(/\/deployments\/[0-9a-f-]+$/);
    await page.waitForSelector("h1 >> text=archive");
    await ends(page, "live");
    await page.goto(`${base}/apps/${cfg.app}`);
  });

  await step("the stream resumes after a drop, then cancel a running build", async () => {
    await page.fill("form[aria-label=Deploy] input[name=git_ref]", "slow");
    await page.click("button[data-action=deploy]");
    await page.waitForURL(/\/deployments\/[0-9a-f-]+$/);
    // The network drops while the build prints: the stream notices, retries,
    // and resumes from its cursor: every line once, in order.
    await page.waitForSelector(".line .text >> text=/^TICK 3$/", { timeout: LONG });
    const before = await page.evaluate(() => ({ ...window.slipway.events.stats }));
    await context.setOffline(true);
    await page.evaluate(() => window.slipway.events.drop());
    await page.waitForSelector("[data-stream=retrying]", { timeout: 10_000 });
    await new Promise((done) => setTimeout(done, 2000));
    await context.setOffline(false);
    await page.waitForFunction((n) => window.slipway.events.stats.resumes > n, before.resumes, { timeout: 20_000 });
    await page.waitForSelector(".line .text >> text=/^SLOW-START$/", { timeout: LONG });
    const ticks = await page.$$eval(".line .text", (els) => els.map((e) => e.textContent).filter((t) => /^TICK \d+$/.test(t)));
    const want = Array.from({ length: 30 }, (_, i) => `TICK ${i + 1}`);
    if (JSON.stringify(ticks) !== JSON.stringify(want)) {
      // What the API stored, against what the page shows.
      const id = page.url().split("/").pop();
      const stored = await page.evaluate(async ({ id, project }) => {
        const r = await fetch(`/v1/deployments/${id}/logs?limit=1000`, { headers: { "slipway-project": project } });
        return (await r.json()).lines.filter((l) => /^TICK|SLOW-START/.test(l.line)).map((l) => `${l.seq}:${l.line}`);
      }, { id, project: cfg.project });
      const shown = await page.$$eval(".line", (els) => els.map((e) => `${e.dataset.seq}:${e.querySelector(".text").textContent}`).filter((t) => /:(TICK|SLOW-START)/.test(t)));
      log(`stored: ${stored.join(",")}`);
      log(`shown:  ${shown.join(",")}`);
    }
    check(JSON.stringify(ticks) === JSON.stringify(want), `every TICK once, in order: ${ticks.join(",")}`);
    await page.click("button.danger >> text=Cancel");
    await ends(page, "cancelled");
  });

  await step("set and unset a secret (masked, never in the page)", async () => {
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector("form[aria-label='Set a variable']");
    await page.fill("form[aria-label='Set a variable'] input[name=key]", "API_TOKEN");
    await page.fill("form[aria-label='Set a variable'] input[name=value]", cfg.secret_value);
    await page.check("form[aria-label='Set a variable'] input[name=secret]");
    await page.click("form[aria-label='Set a variable'] button[type=submit]");
    await page.waitForSelector("tr[data-key=API_TOKEN] .masked");
    check(!(await page.content()).includes(cfg.secret_value), "the secret's value is not in the page");
    await page.fill("form[aria-label='Set a variable'] input[name=key]", "PLAIN_KEY");
    await page.fill("form[aria-label='Set a variable'] input[name=value]", "plain-value");
    await page.uncheck("form[aria-label='Set a variable'] input[name=secret]");
    await page.click("form[aria-label='Set a variable'] button[type=submit]");
    await page.waitForSelector("tr[data-key=PLAIN_KEY] >> text=plain-value");
    await page.screenshot({ path: join(shots, "app-env.png"), fullPage: true });
    await page.click("tr[data-key=API_TOKEN] button[data-action=unset]");
    await page.waitForSelector("tr[data-key=API_TOKEN]", { state: "detached" });
  });

  await step("domains, scale and add-ons of the deployed app", async () => {
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector(".scale [data-replicas='1']");
    check((await page.locator("form[aria-label=Scale] input[name=replicas]").count()) === 1, "an owner can scale");
    const domain = "form[aria-label='Add a domain']";
    await page.fill(`${domain} input[name=domain]`, "not a domain");
    await page.click(`${domain} button[type=submit]`);
    await page.waitForSelector(".domains .error >> text=validation_failed");
    await page.fill(`${domain} input[name=domain]`, "www.browser.test");
    await page.click(`${domain} button[type=submit]`);
    await page.waitForSelector("li[data-domain='www.browser.test']");
    const addon = "form[aria-label='Add an add-on']";
    await page.selectOption(`${addon} select[name=kind]`, "volume");
    await page.fill(`${addon} input[name=name]`, "files");
    await page.fill(`${addon} input[name=mount]`, "/data");
    await page.click(`${addon} button[type=submit]`);
    const row = await page.waitForSelector("tr[data-addon=files][data-state=pending]");
    check((await row.textContent()).includes("/data"), "the volume's mount is shown");
    await page.screenshot({ path: join(shots, "app-domains-scale-addons.png"), fullPage: true });
    await page.click("li[data-domain='www.browser.test'] button[data-action=remove-domain]");
    await page.waitForSelector("li[data-domain='www.browser.test']", { state: "detached" });
    await page.click("tr[data-addon=files] button[data-action=detach-addon]");
    await page.waitForSelector("tr[data-addon=files]", { state: "detached" });
  });

  await step("an owner invites a member and sees the one-use link", async () => {
    await page.click("header nav a >> text=Members");
    await page.waitForSelector(`table.members tr[data-member='${cfg.viewer.email}'][data-role=viewer]`);
    const invite = "form[aria-label=Invite]";
    await page.fill(`${invite} input[name=email]`, invitee);
    await page.selectOption(`${invite} select[name=role]`, "member");
    await page.click(`${invite} button[type=submit]`);
    const link = await (await page.waitForSelector(".invite-link input[name=invite_url]")).inputValue();
    check(/\/invite\/[A-Za-z0-9_-]{16,}$/.test(link), `the invitation link: ${link}`);
    await page.waitForSelector(`tr[data-invitation='${invitee}']`);
    await page.screenshot({ path: join(shots, "members.png"), fullPage: true });
    // The API's refusals, shown with their codes.
    await page.fill(`${invite} input[name=email]`, invitee);
    await page.click(`${invite} button[type=submit]`);
    await page.waitForSelector(".error >> text=already_invited");
    await page.fill(`${invite} input[name=email]`, cfg.viewer.email);
    await page.click(`${invite} button[type=submit]`);
    await page.waitForSelector(".error >> text=already_member");
    invitation = link;
  });

  await step("the invited person opens the link, chooses a password and is a member", async () => {
    const ictx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const p = await ictx.newPage();
    await p.goto(new URL(new URL(invitation, cfg.url).pathname, cfg.url).href);
    await p.waitForSelector("form[aria-label='Accept the invitation']");
    await p.screenshot({ path: join(shots, "accept-invitation.png") });
    await p.fill("input[name=password]", "harbor-quill-meadow-4471");
    await p.click("form[aria-label='Accept the invitation'] button[type=submit]");
    await p.waitForSelector(`ul.projects li:has-text('${cfg.project}') >> text=member`);
    check(!p.url().includes("/invite/"), `the link left the address bar: ${p.url()}`);
    await ictx.close();
  });

  await step("an owner changes a role; the last owner cannot step down", async () => {
    // The project's creator was the admin token, not a person: the
    // newcomer, made owner, is its only owner.
    await page.goto(`${base}/members`);
    const row = `table.members tr[data-member='${invitee}']`;
    await page.selectOption(`${row}[data-role=member] select[name=member_role]`, "owner");
    await page.waitForSelector(`${row}[data-role=owner]`);
    if ((await page.locator("table.members tr[data-role=owner]").count()) === 1) {
      await page.selectOption(`${row} select[name=member_role]`, "viewer");
      await page.waitForSelector(".error >> text=last_owner");
      check((await page.locator(`${row} select[name=member_role]`).inputValue()) === "owner", "the refused change shows the stored role again");
      await page.screenshot({ path: join(shots, "members-last-owner.png"), fullPage: true });
    }
  });

  await step("the wizard shows prices and refuses bad input", async () => {
    await page.goto(`${base}/install`);
    await page.click("button[data-provider=hetzner]");
    await page.click("button.choice[data-region]");
    await page.waitForSelector("table.sizes td.price >> text=/€\\d+\\.\\d\\d/");
    await page.screenshot({ path: join(shots, "wizard-sizes.png"), fullPage: true });
    await page.click("table.sizes tr[data-size] button");
    await page.fill("input[name=environment]", "Prod!");
    await page.fill("input[name=domain]", "not a domain");
    await page.fill("input[name=app]", "-web");
    await page.click("form[aria-label=Environment] button[type=submit]");
    for (const f of ["environment", "domain", "app", "git_url"]) await page.waitForSelector(`.error[data-field=${f}]`);
    await page.fill("input[name=environment]", "production");
    await page.fill("input[name=domain]", "app.example.com");
    await page.fill("input[name=app]", "web");
    await page.fill("input[name=git_url]", cfg.git_url);
    await page.click("form[aria-label=Environment] button[type=submit]");
    await page.waitForSelector(".review .total .price >> text=/€\\d+\\.\\d\\d/");
    await page.screenshot({ path: join(shots, "wizard-review.png"), fullPage: true });
  });

  await step("an install through the wizard: a refusal at its field, steps and logs live, completed, destroyed", async () => {
    check(cfg.hetzner?.url, "the fake Hetzner's URL");
    await page.goto(`${base}/install`);
    await page.click("button[data-provider=hetzner]");
    await page.click("button.choice[data-region=fsn1]");
    await page.click("table.sizes tr[data-size=cx22] button");
    const form = "form[aria-label=Environment]";
    await page.fill(`${form} input[name=environment]`, "production");
    await page.fill(`${form} input[name=domain]`, "");
    await page.fill(`${form} input[name=app]`, cfg.install_app);
    // Passes the page's check (not empty), refused by the API's.
    await page.fill(`${form} input[name=git_url]`, "not-a-url");
    await page.fill(`${form} input[name=git_ref]`, "main");
    await page.click(`${form} button[type=submit]`);
    await page.waitForSelector(".review .total .price >> text=/€\\d+\\.\\d\\d/");
    // No Hetzner account yet: the page offers to add one; the provider
    // refuses a wrong token in its words.
    const account = "form[aria-label='Add a cloud account']";
    await page.fill(`${account} input[name=token]`, "not-the-token");
    await page.fill(`${account} input[name=endpoint]`, cfg.hetzner.url);
    await page.click(`${account} button[type=submit]`);
    await page.waitForSelector(`${account} .error >> text=invalid_credentials`);
    await page.fill(`${account} input[name=token]`, cfg.hetzner.token);
    await page.click(`${account} button[type=submit]`);
    await page.waitForSelector(".review select[name=account] option[value=main]", { state: "attached" });
    await page.click("button[data-action=create-install]");
    // The API's refusal, at the field it names (back on the setup step).
    await page.waitForSelector(`${form} .error[data-field=git_url] >> text=validation_failed`);
    await page.screenshot({ path: join(shots, "wizard-refusal.png"), fullPage: true });
    await page.fill(`${form} input[name=git_url]`, cfg.git_url);
    await page.click(`${form} button[type=submit]`);
    await page.click("button[data-action=create-install]");
    await page.waitForURL(/\/installs\/[0-9a-f-]+$/);
    await page.waitForSelector(".install[data-status]");
    // Every state the page shows each step in, in the order it shows them.
    await page.evaluate(() => {
      window.__steps = [];
      const seen = () => {
        const now = [...document.querySelectorAll(".install-steps li")].map((li) => `${li.dataset.step}:${li.dataset.state}`).join(" ");
        if (window.__steps[window.__steps.length - 1] !== now) window.__steps.push(now);
      };
      seen();
      new MutationObserver(seen).observe(document.body, { subtree: true, attributes: true, childList: true });
    });
    await page.waitForSelector("[data-log-operation] .line", { timeout: LONG });
    const ended = await page.waitForSelector(".install[data-status=completed], .install[data-status=failed]", { timeout: 600_000 });
    if ((await ended.getAttribute("data-status")) !== "completed") {
      const why = await page.locator(".install-error").allTextContents();
      throw new Error(`the install failed: ${why.join(" ")}`);
    }
    const seen = await page.evaluate(() => window.__steps);
    log(`install steps as shown: ${seen.join(" | ")}`);
    const order = ["provision", "configure", "deploy", "verify"];
    const running = seen.map((s) => s.split(" ").findIndex((x) => x.endsWith(":running"))).filter((i) => i >= 0);
    check(running.every((i, n) => n === 0 || i >= running[n - 1]), `steps ran in order: ${seen.join(" | ")}`);
    check(new Set(running).size >= 2, `the page saw the steps advance live: ${seen.join(" | ")}`);
    check(order.every((s) => seen[seen.length - 1].includes(`${s}:done`)), `all four steps done: ${seen[seen.length - 1]}`);
    check((await page.locator("[data-log-operation] .line").count()) > 0, "the log of the last step is shown");
    // Any step's log, on a click: the first deployment's build and start.
    await page.click(".install-steps li[data-step=deploy] button");
    await page.waitForSelector("h2 >> text=Log of deploy");
    await page.waitForSelector("[data-log-operation] .line >> text=/succeeded|live/");
    const appUrl = await page.getAttribute(".app-url a", "href");
    const answer = await fetch(appUrl);
    check(answer.status === 200, `the app answers at ${appUrl}: ${answer.status}`);
    await page.screenshot({ path: join(shots, "install-completed.png"), fullPage: true });
    // Listed, then destroyed by its owner (a second click confirms).
    await page.click(".crumbs a >> text=Installs");
    await page.click("table.installs tbody tr a");
    await page.waitForSelector(".install[data-status=completed]");
    await page.click("button[data-action=destroy-install]");
    await page.click("button[data-action=destroy-install] >> text=sure");
    await page.waitForSelector(".install[data-status=destroying], .install[data-status=destroyed]");
    await page.waitForSelector(".install[data-status=destroyed]", { timeout: LONG });
    check((await page.locator("button[data-action=destroy-install]").count()) === 0, "nothing left to destroy");
    await page.screenshot({ path: join(shots, "install-destroyed.png"), fullPage: true });
  });

  await step("overview, audit, tokens, dead jobs, targets render", async () => {
    for (const [path, sel, shot] of [
      ["", "h2 >> text=Deploys per day", "overview"],
      ["/audit", "table tbody tr", "audit"],
      ["/tokens", "form button >> text=Create token", "tokens"],
      ["/dead-jobs", "h1 >> text=Dead jobs", "dead-jobs"],
      ["/targets", "text=No cloud servers", "targets"],
    ]) {
      await page.goto(`${base}${path}`);
      try {
        await page.waitForSelector(sel);
      } finally {
        await page.screenshot({ path: join(shots, `${shot}.png`), fullPage: true });
      }
    }
  });

  await step("first load of the app page: compressed JS and CSS", async () => {
    const fresh = await browser.newContext();
    const cookies = await context.cookies();
    await fresh.addCookies(cookies);
    const p = await fresh.newPage();
    let bytes = 0;
    p.on("response", async (r) => {
      if (/\.(js|css)$/.test(new URL(r.url()).pathname)) {
        const h = await r.allHeaders();
        bytes += Number(h["content-length"] ?? (await r.body()).length);
        check(h["content-encoding"] === "gzip", `${r.url()} sent gzipped`);
      }
    });
    await p.goto(`${base}/apps/${cfg.app}`);
    await p.waitForSelector(`h1 >> text=${cfg.app}`);
    metrics.app_page_first_load_js_css_gzip_bytes = bytes;
    await fresh.close();
  });

  await step("the apps page with 200 apps", async () => {
    // Five at a time; a refusal to come back later (429, 503) is retried.
    const made = await page.evaluate(async ({ count, project }) => {
      const me = await (await fetch("/v1/me")).json();
      const refused = {};
      let ok = 0;
      const create = async (j) => {
        for (let attempt = 0; attempt < 5; attempt++) {
          const r = await fetch("/v1/apps", {
            method: "POST",
            headers: { "content-type": "application/json", "x-csrf-token": me.csrf_token, "slipway-project": project },
            body: JSON.stringify({ name: `bulk-${String(j).padStart(3, "0")}` }),
          });
          if (r.status === 201) return ok++;
          const body = await r.json().catch(() => ({}));
          refused[`${r.status} ${body.code}`] = (refused[`${r.status} ${body.code}`] ?? 0) + 1;
          if (r.status !== 429 && r.status !== 503) return;
          await new Promise((done) => setTimeout(done, 500 * (attempt + 1)));
        }
      };
      for (let i = 0; i < count; i += 5) {
        const batch = [];
        for (let j = i; j < Math.min(count, i + 5); j++) batch.push(create(j));
        await Promise.all(batch);
      }
      return { ok, refused };
    }, { count: 199, project: cfg.project });
    if (Object.keys(made.refused).length) log(`app creation refusals (retried): ${JSON.stringify(made.refused)}`);
    check(made.ok === 199, `made ${made.ok} apps`);
    const started = Date.now();
    await page.goto(`${base}/apps`);
    await page.waitForSelector("table.apps[data-count='200'] tr[data-app='bulk-198']");
    const painted = await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => done(performance.now()))));
    metrics.apps_page_200_painted_ms = Math.round(painted);
    metrics.apps_page_200_wall_ms = Date.now() - started;
    await page.screenshot({ path: join(shots, "apps.png") });
  });

  check(consoleErrors.length === 0, `no errors in the console: ${consoleErrors.join(" | ")}`);

  await step("a viewer sees no deploy button and the API refuses its deploy", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await vctx.newPage();
    await signIn(page, cfg.viewer.email, cfg.viewer.password);
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector(`h1 >> text=${cfg.app}`);
    await page.waitForSelector("table.deployments tbody tr");
    check((await page.locator("button[data-action=deploy]").count()) === 0, "no deploy button");
    check((await page.locator("button[data-action=rollback]").count()) === 0, "no rollback button");
    check((await page.locator("form[aria-label='Set a variable']").count()) === 0, "no env form");
    for (const form of ["Add a domain", "Scale", "Add an add-on"]) {
      check((await page.locator(`form[aria-label='${form}']`).count()) === 0, `no ${form} form`);
    }
    check((await page.locator("header nav a >> text=Members").count()) === 0, "no members link");
    await page.goto(`${base}/installs`);
    await page.waitForSelector("h1 >> text=Installs");
    check((await page.locator("a >> text=New install").count()) === 0, "no new install link");
    await page.goto(`${base}/apps/${cfg.app}`);
    await page.waitForSelector(".scale [data-replicas]");
    await page.screenshot({ path: join(shots, "app-as-viewer.png"), fullPage: true });
    const status = await page.evaluate(async ({ app, project }) => {
      const me = await (await fetch("/v1/me")).json();
      const r = await fetch(`/v1/apps/${app}/deployments`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-csrf-token": me.csrf_token, "slipway-project": project },
        body: "{}",
      });
      return r.status;
    }, { app: cfg.app, project: cfg.project });
    check(status === 403, `the viewer's deploy answered ${status}`);
  });
} catch (e) {
  // already reported by step()
  if (!failures.length) log(`FAIL: ${e.stack ?? e}`), failures.push("setup");
} finally {
  await browser.close().catch(() => {});
}
log(`metrics ${JSON.stringify(metrics)}`);
log(failures.length ? `${failures.length} failed: ${failures.join(", ")}` : "all scenarios passed");
process.exit(failures.length ? 1 : 0);
