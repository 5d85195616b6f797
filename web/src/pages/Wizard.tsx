// The install wizard: provider → region → size (with its monthly price in
// EUR from the catalog) → environment, domain and app → review (with the
// API's estimate), where an owner picks or adds the cloud account and
// creates the install (`POST /v1/installs`), then follows it on its page.
// An API refusal is shown at the field it names.
import { useEffect, useState } from "preact/hooks";
import { ApiError, enc, get, isOwner, post } from "../api";
import { Field, fieldOf, Install } from "../installs";
import type { Ctx } from "../main";
import { navigate } from "../router";
import { ErrorBox } from "../ui";

const SLUG = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const SLUG_RULE = "1 to 63 of a-z, 0-9 and '-', starting with a letter and not ending with '-'";

const eur = (n: number) => `€${n.toFixed(2)}`;

export interface Setup {
  environment: string;
  domain: string;
  server_name: string;
  app: string;
  git_url: string;
  git_ref: string;
}

/** The setup step's fields: the ones the wizard edits before the review. */
const SETUP_FIELDS: ReadonlySet<Field> = new Set(["environment", "domain", "server_name", "app", "git_url", "git_ref"]);

export function validateSetup(s: Setup): Partial<Record<Field, string>> {
  const errors: Partial<Record<Field, string>> = {};
  if (!SLUG.test(s.environment)) errors.environment = SLUG_RULE;
  if (!SLUG.test(s.app)) errors.app = SLUG_RULE;
  if (s.server_name && !SLUG.test(s.server_name)) errors.server_name = SLUG_RULE;
  if (s.domain && !DOMAIN.test(s.domain.toLowerCase())) errors.domain = "a DNS name such as app.example.com";
  if (!s.git_url.trim()) errors.git_url = "the repository the first deploy builds (https://…, ssh://… or git@…)";
  return errors;
}

/** The body of `POST /v1/installs`: optional fields only when given. */
export function installBody(provider: string, account: string, region: string, size: string, s: Setup) {
  const app: Record<string, string> = { name: s.app, git_url: s.git_url.trim() };
  if (s.git_ref.trim()) app.git_ref = s.git_ref.trim();
  const body: Record<string, unknown> = { provider, account, region, size, environment: s.environment, app };
  if (s.server_name) body.server_name = s.server_name;
  if (s.domain) body.domain = s.domain.toLowerCase();
  return body;
}

function FieldError({ field, errors }: { field: Field; errors: Partial<Record<Field, string>> }) {
  return errors[field] ? <p class="error" data-field={field}>{field.replace("_", " ")}: {errors[field]}</p> : null;
}

/** Adds a cloud account of the chosen provider (checked by the provider before it is saved). */
function AccountForm({ provider, onAdded }: { provider: string; onAdded: (name: string) => void }) {
  const [name, setName] = useState("main");
  const [secret, setSecret] = useState("");
  const [endpoint, setEndpoint] = useState("");
  const [serverImages, setServerImages] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const tokenOnly = provider === "hetzner";
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    let credentials: unknown;
    try {
      credentials = tokenOnly ? { token: secret } : JSON.parse(secret);
    } catch {
      return setError(new ApiError(0, "validation_failed", "credentials: not JSON"));
    }
    setBusy(true);
    try {
      const made = await post<{ name: string }>("/v1/cloud-accounts", {
        provider,
        name,
        credentials,
        ...(endpoint ? { endpoint } : {}),
        ...(serverImages ? { server_images: true } : {}),
      });
      onAdded(made.name);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card account" aria-label="Add a cloud account" onSubmit={submit}>
      <strong>Add a {provider} account</strong>
      <label>Name<input name="account_name" value={name} onInput={(e) => setName(e.currentTarget.value)} /></label>
      {tokenOnly ? (
        <label>API token<input name="token" type="password" autocomplete="off" value={secret} onInput={(e) => setSecret(e.currentTarget.value)} /></label>
      ) : (
        <label>Credentials (JSON)<textarea name="credentials" rows={4} value={secret} onInput={(e) => setSecret(e.currentTarget.value)} /></label>
      )}
      <label>API endpoint (optional)<input name="endpoint" placeholder="the provider's public API" value={endpoint} onInput={(e) => setEndpoint(e.currentTarget.value)} /></label>
      <label class="check">
        <input type="checkbox" name="server_images" checked={serverImages} onChange={(e) => setServerImages(e.currentTarget.checked)} /> Save a server image of the first server of
        each kind (billed by its size): later servers start set up
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>{busy ? "Checking…" : "Add account"}</button>
    </form>
  );
}

export function Wizard({ ctx }: { ctx: Ctx }) {
  const [catalog, setCatalog] = useState<any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [step, setStep] = useState(0);
  const [provider, setProvider] = useState<string>("");
  const [region, setRegion] = useState<string>("");
  const [size, setSize] = useState<string>("");
  const [setup, setSetup] = useState<Setup>({ environment: "production", domain: "", server_name: "", app: "", git_url: "", git_ref: "" });
  const [invalid, setInvalid] = useState<Partial<Record<Field, string>>>({});
  const [estimate, setEstimate] = useState<any>(null);
  const [accounts, setAccounts] = useState<{ name: string; provider: string }[] | null>(null);
  const [account, setAccount] = useState("");
  const [busy, setBusy] = useState(false);
  const owner = isOwner(ctx.project.role);

  useEffect(() => {
    get<{ items: any[] }>("/v1/providers").then((c) => setCatalog(c.items), setError);
  }, []);
  const p = catalog?.find((x) => x.provider === provider);
  const sizes = (p?.sizes ?? []).filter((s: any) => s.prices.some((pr: any) => pr.region === region));
  const price = (s: any) => s.prices.find((pr: any) => pr.region === region)?.monthly_eur as number | undefined;
  const set = (key: keyof Setup) => (e: { currentTarget: HTMLInputElement }) => setSetup({ ...setup, [key]: e.currentTarget.value });

  const loadAccounts = async (pick?: string) => {
    try {
      const all = (await get<{ items: { name: string; provider: string }[] }>("/v1/cloud-accounts")).items.filter((a) => a.provider === provider);
      setAccounts(all);
      setAccount(pick ?? (all.some((a) => a.name === account) ? account : all[0]?.name ?? ""));
    } catch (e) {
      setError(e);
    }
  };

  const toReview = async () => {
    const errors = validateSetup(setup);
    setInvalid(errors);
    if (Object.keys(errors).length) return;
    setError(null);
    try {
      setEstimate(await post("/v1/estimates", { provider, region, size }));
      if (owner) await loadAccounts();
      setStep(4);
    } catch (e) {
      setError(e);
    }
  };

  const create = async () => {
    setError(null);
    setInvalid({});
    setBusy(true);
    try {
      const made = await post<Install>("/v1/installs", installBody(provider, account, region, size, setup));
      navigate(`/p/${enc(ctx.project.name)}/installs/${enc(made.id)}`);
    } catch (e) {
      const field = e instanceof ApiError ? fieldOf(e) : null;
      if (!field) return setError(e);
      const { code, message } = e as ApiError;
      setInvalid({ [field]: `${code}: ${message}` });
      if (SETUP_FIELDS.has(field)) setStep(3);
    } finally {
      setBusy(false);
    }
  };

  const steps = ["Provider", "Region", "Size", "Setup", "Review"];
  return (
    <section class="wizard">
      <h1>Install an app on a new server</h1>
      <ol class="steps">{steps.map((s, i) => <li key={s} class={i === step ? "now" : i < step ? "done" : ""}>{s}</li>)}</ol>
      <ErrorBox error={error} />
      {!catalog ? <p class="loading">Loading the catalog…</p> : null}
      {catalog && step === 0 ? (
        <div class="choices">
          {catalog.map((c) => (
            <button key={c.provider} class={`choice ${provider === c.provider ? "picked" : ""}`} data-provider={c.provider}
              onClick={() => { setProvider(c.provider); setRegion(""); setSize(""); setStep(1); }}>
              <strong>{c.name}</strong>
              <span class="muted">{c.regions.length} regions · from {eur(Math.min(...c.sizes.flatMap((s: any) => s.prices.map((pr: any) => pr.monthly_eur))))}/month</span>
              {!c.driver ? <span class="muted">catalog only</span> : null}
            </button>
          ))}
        </div>
      ) : null}
      {p && step === 1 ? (
        <div class="choices">
          {p.regions.map((r: any) => (
            <button key={r.id} class="choice" data-region={r.id} onClick={() => { setRegion(r.id); setSize(""); setStep(2); }}>
              <strong>{r.name}</strong> <span class="muted">{r.id} · {r.country}</span>
            </button>
          ))}
        </div>
      ) : null}
      {p && step === 2 ? (
        <table class="sizes">
          <thead><tr><th>Size</th><th>vCPUs</th><th>Memory</th><th>Disk</th><th>Per month</th><th></th></tr></thead>
          <tbody>
            {sizes.map((s: any) => (
              <tr key={s.id} data-size={s.id}>
                <td><code>{s.id}</code></td><td>{s.vcpus}</td><td>{s.memory_gb} GB</td><td>{s.disk_gb} GB</td>
                <td class="price">{eur(price(s)!)}</td>
                <td><button class="small" onClick={() => { setSize(s.id); setStep(3); }}>Choose</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {step === 3 ? (
        <form class="card" onSubmit={(e) => { e.preventDefault(); toReview(); }} aria-label="Environment">
          <label>Environment<input name="environment" value={setup.environment} onInput={set("environment")} /></label>
          <FieldError field="environment" errors={invalid} />
          <label>Domain (optional)<input name="domain" placeholder="app.example.com" value={setup.domain} onInput={set("domain")} /></label>
          <FieldError field="domain" errors={invalid} />
          <label>Server name (optional: the app's name)<input name="server_name" value={setup.server_name} onInput={set("server_name")} /></label>
          <FieldError field="server_name" errors={invalid} />
          <label>App name<input name="app" placeholder="web" value={setup.app} onInput={set("app")} /></label>
          <FieldError field="app" errors={invalid} />
          <label>Git URL<input name="git_url" placeholder="https://github.com/you/app.git" value={setup.git_url} onInput={set("git_url")} /></label>
          <FieldError field="git_url" errors={invalid} />
          <label>Git ref (optional)<input name="git_ref" placeholder="main" value={setup.git_ref} onInput={set("git_ref")} /></label>
          <FieldError field="git_ref" errors={invalid} />
          <button type="submit">Review</button>
        </form>
      ) : null}
      {step === 4 && estimate ? (
        <div class="card review">
          <dl>
            <dt>Provider</dt><dd>{p?.name}<FieldError field="provider" errors={invalid} /></dd>
            <dt>Region</dt><dd>{region}<FieldError field="region" errors={invalid} /></dd>
            <dt>Size</dt><dd>{size}<FieldError field="size" errors={invalid} /></dd>
            <dt>Environment</dt><dd>{setup.environment}</dd>
            <dt>Domain</dt><dd>{setup.domain || "—"}</dd>
            <dt>Server</dt><dd>{setup.server_name || setup.app}</dd>
            <dt>App</dt><dd>{setup.app} <span class="muted">{setup.git_url}{setup.git_ref ? ` @ ${setup.git_ref}` : ""}</span></dd>
          </dl>
          <table class="estimate">
            <tbody>
              {estimate.items.map((l: any, i: number) => <tr key={i}><td>{l.description}</td><td class="price">{eur(l.monthly_eur)}</td></tr>)}
              <tr class="total"><td>Per month ({estimate.vat})</td><td class="price">{eur(estimate.monthly_total_eur)}</td></tr>
            </tbody>
          </table>
          <FieldError field="cost" errors={invalid} />
          {!owner ? <p class="notice" role="status">Only a project owner can create an install: it buys a server.</p> : null}
          {owner && accounts ? (
            <>
              {accounts.length ? (
                <label>Cloud account
                  <select name="account" value={account} onChange={(e) => setAccount(e.currentTarget.value)}>
                    {accounts.map((a) => <option key={a.name} value={a.name}>{a.name}</option>)}
                  </select>
                </label>
              ) : <p class="muted">No {provider} account in this project yet: add one.</p>}
              <FieldError field="account" errors={invalid} />
              {accounts.length ? null : <AccountForm provider={provider} onAdded={(name) => loadAccounts(name)} />}
              <button data-action="create-install" disabled={!account || busy} onClick={create}>{busy ? "Creating…" : "Create"}</button>
            </>
          ) : null}
        </div>
      ) : null}
      {step > 0 ? <button class="link" onClick={() => { setInvalid({}); setStep(step - 1); }}>← Back</button> : null}
    </section>
  );
}
