// An install's page: its status and four steps live from the install's own
// event stream, the running step's log from the tab's event stream (a
// step's operation is a deployment), the app's URL or the DNS record to
// create, the error, and an owner's destroy (a second click confirms).
// Also the project's list of installs.
import { useEffect, useState } from "preact/hooks";
import { del, enc, get, isOwner } from "../api";
import { events } from "../events";
import { destroyable, followInstall, Install, InstallStep, logStep, OperationSpan, stepTimes } from "../installs";
import type { Ctx } from "../main";
import { ago, Badge, duration, ErrorBox, Link, shortId } from "../ui";
import { appendLines, LogLine, LogView } from "./LogView";

/** The log of one operation (a deployment), live. */
function OperationLog({ operation, step }: { operation: string; step: string }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  useEffect(() => {
    setLines([]);
    return events.subscribe([operation], [], (e) => {
      if (e.kind === "log" && e.data.deployment === operation) setLines((list) => appendLines(list, [e.data]));
    });
  }, [operation]);
  return (
    <div class="grow" data-log-operation={operation}>
      <h2>Log of {step}</h2>
      <LogView lines={lines} name={`install-${step}-${operation}`} />
    </div>
  );
}

/** Re-renders every second while something runs, so running times count up. */
function useTick(running: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [running]);
  return now;
}

/**
 * The spans of the steps' operations, read again whenever a step's state
 * changes (a step starts or ends when its operation does).
 */
function useSpans(steps: InstallStep[] | undefined): Record<string, OperationSpan> {
  const [spans, setSpans] = useState<Record<string, OperationSpan>>({});
  const key = (steps ?? []).map((s) => `${s.operation}:${s.state}`).join(" ");
  useEffect(() => {
    const ops = new Set((steps ?? []).filter((s) => s.operation && s.state !== "pending").map((s) => s.operation!));
    for (const op of ops) {
      get<OperationSpan>(`/v1/deployments/${enc(op)}`).then(
        (d) => setSpans((now) => ({ ...now, [op]: { created_at: d.created_at, finished_at: d.finished_at } })),
        () => {},
      );
    }
  }, [key]);
  return spans;
}

export function InstallPage({ ctx, id }: { ctx: Ctx; id: string }) {
  const [install, setInstall] = useState<Install | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const [armed, setArmed] = useState(false);
  // A step whose log the reader chose; else the page follows the running one.
  const [picked, setPicked] = useState<string | null>(null);
  // A destroy of a finished install starts its stream again.
  const [generation, setGeneration] = useState(0);
  const base = `/p/${enc(ctx.project.name)}`;

  useEffect(
    () => followInstall(id, (view) => { setInstall(view); setError(null); }, setError),
    [id, generation],
  );
  const now = useTick(!!install?.steps.some((s) => s.state === "running"));
  const spans = useSpans(install?.steps);

  const destroy = async () => {
    setFailure(null);
    if (!armed) return setArmed(true);
    setArmed(false);
    try {
      setInstall(await del<Install>(`/v1/installs/${enc(id)}`));
      setGeneration((g) => g + 1);
    } catch (err) {
      setFailure(err);
    }
  };

  if (!install) return <section><ErrorBox error={error} /><p class="loading">Loading…</p></section>;
  const shown = install.steps.find((s) => s.name === picked && s.operation) ?? logStep(install.steps);
  const took = stepTimes(install.steps, spans, now);
  return (
    <section class="install" data-install={install.id} data-status={install.status}>
      <p class="crumbs"><Link href={`${base}/installs`}>Installs</Link> / {shortId(install.id)}</p>
      <h1>
        {install.app.name} on {install.server.name} <Badge state={install.status} />
      </h1>
      <ErrorBox error={error || failure} />
      {install.error ? (
        <p class="error install-error"><code>{install.error.code}</code> {install.error.message}</p>
      ) : null}
      <div class="facts">
        <span>{install.provider} · {install.account} · {install.region} · {install.size}</span>
        <span>{install.environment}</span>
        <span class="price">€{install.estimated_cost_eur}/month</span>
        <span>server <Badge state={install.server.state} /> {install.server.ipv4 ?? ""}</span>
        {install.status !== "destroyed" ? <Link href={`${base}/apps/${enc(install.app.name)}`}>app {install.app.name}</Link> : null}
        {isOwner(ctx.project.role) && destroyable(install.status) ? (
          <button class="danger" data-action="destroy-install" onClick={destroy}>{armed ? "Destroy: sure?" : "Destroy"}</button>
        ) : null}
      </div>
      {install.app_url ? (
        <p class="app-url">The app answers at <a href={install.app_url} target="_blank" rel="noreferrer noopener">{install.app_url}</a></p>
      ) : null}
      {install.dns ? (
        <div class="card dns" data-dns={install.dns.name}>
          <strong>DNS record to create</strong>
          <table>
            <tbody><tr><td>{install.dns.type}</td><td><code>{install.dns.name}</code></td><td><code>{install.dns.value ?? "(the server's address, once known)"}</code></td></tr></tbody>
          </table>
          <p class="muted">{install.dns.note}</p>
        </div>
      ) : null}
      <div class="two">
        <div>
          <h2>Steps</h2>
          <ol class="install-steps">
            {install.steps.map((s, i) => (
              <li key={s.name} data-step={s.name} data-state={s.state}>
                {s.operation ? (
                  <button class={`link step-name ${shown?.name === s.name ? "shown" : ""}`} title="show its log" onClick={() => setPicked(s.name)}>{s.name}</button>
                ) : <strong class="step-name">{s.name}</strong>}{" "}
                <Badge state={s.state} />
                {took[i] !== null ? <span class="took">{duration(took[i]!)}</span> : null}
                {s.operation ? <span class="muted">operation {shortId(s.operation)}</span> : null}
              </li>
            ))}
          </ol>
        </div>
        {shown?.operation ? <OperationLog key={shown.operation} operation={shown.operation} step={shown.name} /> : null}
      </div>
    </section>
  );
}

export function InstallsPage({ ctx }: { ctx: Ctx }) {
  const [items, setItems] = useState<Install[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const base = `/p/${enc(ctx.project.name)}`;
  useEffect(() => void get<{ items: Install[] }>("/v1/installs").then((r) => setItems(r.items), setError), []);
  return (
    <section>
      <h1>Installs</h1>
      {isOwner(ctx.project.role) ? <p><Link href={`${base}/install`}>New install</Link></p> : null}
      <ErrorBox error={error} />
      {items && items.length === 0 ? <p class="muted">No installs yet.</p> : null}
      <table class="installs">
        <thead><tr><th>Created</th><th>Status</th><th>App</th><th>Server</th><th>Where</th><th>EUR / month</th></tr></thead>
        <tbody>
          {(items ?? []).map((i) => (
            <tr key={i.id} data-install={i.id}>
              <td><Link href={`${base}/installs/${enc(i.id)}`}>{ago(i.created_at)}</Link></td>
              <td><Badge state={i.status} /></td><td>{i.app.name}</td><td>{i.server.name}</td>
              <td>{i.provider} {i.region} {i.size}</td><td>{i.estimated_cost_eur}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
