// The install wizard: provider → region → size (with its monthly price in
// EUR from the catalog) → environment, domain and app → review (with the
// API's estimate). Creating servers is not built in the API yet (no
// `POST /v1/installs`): the last step checks everything and says so.
import { useEffect, useState } from "preact/hooks";
import { get, post } from "../api";
import type { Ctx } from "../main";
import { ErrorBox } from "../ui";

const SLUG = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;

const eur = (n: number) => `€${n.toFixed(2)}`;

export function validateSetup(env: string, domain: string, app: string): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!SLUG.test(env)) errors.environment = "1 to 63 of a-z, 0-9 and '-', starting with a letter and not ending with '-'";
  if (!SLUG.test(app)) errors.app = "1 to 63 of a-z, 0-9 and '-', starting with a letter and not ending with '-'";
  if (domain && !DOMAIN.test(domain.toLowerCase())) errors.domain = "a DNS name such as app.example.com";
  return errors;
}

export function Wizard({ ctx: _ctx }: { ctx: Ctx }) {
  const [catalog, setCatalog] = useState<any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [step, setStep] = useState(0);
  const [provider, setProvider] = useState<string>("");
  const [region, setRegion] = useState<string>("");
  const [size, setSize] = useState<string>("");
  const [env, setEnv] = useState("production");
  const [domain, setDomain] = useState("");
  const [app, setApp] = useState("");
  const [invalid, setInvalid] = useState<Record<string, string>>({});
  const [estimate, setEstimate] = useState<any>(null);
  const [created, setCreated] = useState<string | null>(null);

  useEffect(() => {
    get<{ items: any[] }>("/v1/providers").then((c) => setCatalog(c.items), setError);
  }, []);
  const p = catalog?.find((x) => x.provider === provider);
  const sizes = (p?.sizes ?? []).filter((s: any) => s.prices.some((pr: any) => pr.region === region));
  const price = (s: any) => s.prices.find((pr: any) => pr.region === region)?.monthly_eur as number | undefined;

  const toReview = async () => {
    const errors = validateSetup(env, domain, app);
    setInvalid(errors);
    if (Object.keys(errors).length) return;
    setError(null);
    try {
      setEstimate(await post("/v1/estimates", { provider, region, size }));
      setStep(4);
    } catch (e) {
      setError(e);
    }
  };

  const steps = ["Provider", "Region", "Size", "Environment", "Review"];
  return (
    <section class="wizard">
      <h1>Install Slipway on a new server</h1>
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
          <label>Environment<input name="environment" value={env} onInput={(e) => setEnv(e.currentTarget.value)} /></label>
          {invalid.environment ? <p class="error" data-field="environment">environment: {invalid.environment}</p> : null}
          <label>Domain (optional)<input name="domain" placeholder="app.example.com" value={domain} onInput={(e) => setDomain(e.currentTarget.value)} /></label>
          {invalid.domain ? <p class="error" data-field="domain">domain: {invalid.domain}</p> : null}
          <label>First app<input name="app" placeholder="web" value={app} onInput={(e) => setApp(e.currentTarget.value)} /></label>
          {invalid.app ? <p class="error" data-field="app">app: {invalid.app}</p> : null}
          <button type="submit">Review</button>
        </form>
      ) : null}
      {step === 4 && estimate ? (
        <div class="card review">
          <dl>
            <dt>Provider</dt><dd>{p?.name}</dd>
            <dt>Region</dt><dd>{region}</dd>
            <dt>Size</dt><dd>{size}</dd>
            <dt>Environment</dt><dd>{env}</dd>
            <dt>Domain</dt><dd>{domain || "—"}</dd>
            <dt>App</dt><dd>{app}</dd>
          </dl>
          <table class="estimate">
            <tbody>
              {estimate.items.map((l: any, i: number) => <tr key={i}><td>{l.description}</td><td class="price">{eur(l.monthly_eur)}</td></tr>)}
              <tr class="total"><td>Per month ({estimate.vat})</td><td class="price">{eur(estimate.monthly_total_eur)}</td></tr>
            </tbody>
          </table>
          <button onClick={() => setCreated("Creating servers is not available yet: this Slipway's API has no install endpoint (POST /v1/installs). Nothing was created and nothing will be billed.")}>
            Create
          </button>
          {created ? <p class="notice" role="status">{created}</p> : null}
        </div>
      ) : null}
      {step > 0 ? <button class="link" onClick={() => { setCreated(null); setStep(step - 1); }}>← Back</button> : null}
    </section>
  );
}
