// One deployment: its timeline with the time spent in each state, its job
// attempts, and its live log (from the tab's event stream, which sends the
// stored lines first); cancel while it runs.
import { useEffect, useRef, useState } from "preact/hooks";
import { canShip, enc, get, post } from "../api";
import { events } from "../events";
import type { Ctx } from "../main";
import { Badge, describeSource, duration, ErrorBox, isTerminal, Link, shortId } from "../ui";
import { appendLines, LogLine, LogView } from "./LogView";

export function Timeline({ deployment }: { deployment: any }) {
  const steps = deployment.events as { from: string | null; to: string; at: string; detail: string | null }[];
  const end = deployment.finished_at ? Date.parse(deployment.finished_at) : Date.now();
  return (
    <ol class="timeline">
      {steps.map((s, i) => {
        const next = i + 1 < steps.length ? Date.parse(steps[i + 1].at) : isTerminal(s.to) ? null : end;
        return (
          <li key={i} class={`step s-${s.to}`}>
            <Badge state={s.to} /> <span class="muted">{new Date(s.at).toLocaleTimeString()}</span>
            {next !== null ? <span class="took">{duration(next - Date.parse(s.at))}</span> : null}
            {s.detail ? <span class="detail">{s.detail}</span> : null}
          </li>
        );
      })}
    </ol>
  );
}

export function DeploymentPage({ ctx, app, id }: { ctx: Ctx; app: string; id: string }) {
  const [deployment, setDeployment] = useState<any>(null);
  const [lines, setLines] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const timer = useRef(0);
  const base = `/p/${enc(ctx.project.name)}`;

  const load = () => get(`/v1/deployments/${enc(id)}`).then(setDeployment, setError);
  useEffect(() => {
    load();
    return events.subscribe([id], [], (e) => {
      if (e.kind === "open") {
        if (e.fresh) load();
      } else if (e.kind === "log" && e.data.deployment === id) {
        setLines((list) => appendLines(list, [e.data]));
      } else if (e.kind === "deployment" && e.data.deployment === id) {
        setDeployment((d: any) => (d ? { ...d, state: e.data.state } : d));
        clearTimeout(timer.current);
        timer.current = window.setTimeout(load, 100);
      }
    });
  }, [id]);

  const cancel = async () => {
    setError(null);
    try {
      await post(`/v1/deployments/${enc(id)}/cancel`);
      load();
    } catch (err) {
      setError(err);
    }
  };

  if (!deployment) return <section><ErrorBox error={error} /><p class="loading">Loading…</p></section>;
  const url = deployment.https_url ?? deployment.url;
  return (
    <section>
      <p class="crumbs"><Link href={`${base}/apps/${enc(app)}`}>{app}</Link> / deployment {shortId(id)}</p>
      <h1>
        {describeSource(deployment.source)} <Badge state={deployment.state} />
      </h1>
      <ErrorBox error={error} />
      {deployment.error_code ? (
        <p class="error"><code>{deployment.error_code}</code> {deployment.error_message}</p>
      ) : null}
      <div class="facts">
        {deployment.resolved_commit ? <span>commit <code>{deployment.resolved_commit.slice(0, 12)}</code></span> : null}
        {deployment.image_ref ? <span title={deployment.image_ref}>image <code>{deployment.image_ref.split("@")[1]?.slice(0, 19) ?? deployment.image_ref}</code></span> : null}
        {url ? <a href={url} target="_blank" rel="noreferrer noopener">{url}</a> : null}
        {!isTerminal(deployment.state) && canShip(ctx.project.role) ? (
          <button class="danger" onClick={cancel}>Cancel</button>
        ) : null}
      </div>
      <div class="two">
        <div>
          <h2>Timeline</h2>
          <Timeline deployment={deployment} />
          {deployment.attempts.length ? (
            <>
              <h3>Attempts</h3>
              <ul class="attempts">
                {deployment.attempts.map((a: any, i: number) => (
                  <li key={i}>
                    {a.stage} #{a.attempt}/{a.max_attempts} <Badge state={a.job_state} /> {a.outcome ?? ""}
                    {a.error ? <span class="detail">{a.error}</span> : null}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </div>
        <div class="grow">
          <h2>Log</h2>
          <LogView lines={lines} name={`deployment-${id}`} />
        </div>
      </div>
    </section>
  );
}
