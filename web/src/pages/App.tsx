// An app: status, deploy (a git ref), its deployments with cancel and a
// one-click rollback to any earlier live release, stop/start/restart, env
// and secrets (secret values never come back from the API: masked), its
// custom domains and scale (./AppSettings), add-ons (./Addons), and its
// runtime logs, live. Actions the caller's role cannot take are not
// shown; the API refuses them anyway.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, canShip, enc, get, patch, post, upload } from "../api";
import { events } from "../events";
import { navigate } from "../router";
import type { Ctx } from "../main";
import { ago, Badge, describeSource, duration, ErrorBox, isTerminal, Link, shortId } from "../ui";
import { AppUrl, Health } from "./Apps";
import { Addons } from "./Addons";
import { Domains, Scale } from "./AppSettings";
import { appendLines, LogLine, LogView } from "./LogView";

function Deploy({ app, onQueued }: { app: any; onQueued: (id: string) => void }) {
  const [ref, setRef] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body = ref.trim() ? { git_ref: ref.trim() } : {};
      const queued = await post<{ id: string }>(`/v1/apps/${enc(app.name)}/deployments`, body);
      onQueued(queued.id);
    } catch (err) {
      setError(err);
    }
  };
  const sendArchive = async (e: Event) => {
    const input = e.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (!file) return;
    setError(null);
    try {
      const version = await upload<{ id: string }>(`/v1/apps/${enc(app.name)}/versions`, file);
      const queued = await post<{ id: string }>(`/v1/apps/${enc(app.name)}/deployments`, { version: version.id });
      onQueued(queued.id);
    } catch (err) {
      setError(err);
    } finally {
      input.value = "";
    }
  };
  return (
    <form class="inline" onSubmit={submit} aria-label="Deploy">
      <input name="git_ref" placeholder={`git ref (default ${app.git_ref ?? "HEAD"})`} value={ref} onInput={(e) => setRef(e.currentTarget.value)} />
      <button type="submit" data-action="deploy">Deploy</button>
      <label class="check upload" title="a .tar.gz or .zip of the app's source">
        or upload an archive <input type="file" name="archive" accept=".tar.gz,.tgz,.zip,application/gzip,application/zip" onChange={sendArchive} />
      </label>
      <ErrorBox error={error} />
    </form>
  );
}

function Operations({ app, onQueued }: { app: any; onQueued: (id: string) => void }) {
  const [error, setError] = useState<unknown>(null);
  const act = async (action: string) => {
    setError(null);
    try {
      const queued = await post<{ id: string }>(`/v1/apps/${enc(app.name)}/${action}`);
      onQueued(queued.id);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <span class="ops">
      {app.status?.state === "stopped" ? (
        <button class="secondary" onClick={() => act("start")}>Start</button>
      ) : (
        <button class="secondary" onClick={() => act("stop")} disabled={app.status?.state !== "running"}>Stop</button>
      )}
      <button class="secondary" onClick={() => act("restart")} disabled={app.status?.state !== "running"}>Restart</button>
      <ErrorBox error={error} />
    </span>
  );
}

function Deployments({ ctx, app, list, reload }: { ctx: Ctx; app: any; list: any[]; reload: () => void }) {
  const [error, setError] = useState<unknown>(null);
  const base = `/p/${enc(ctx.project.name)}/apps/${enc(app.name)}`;
  const current = app.status?.release?.deployment;
  const ship = canShip(ctx.project.role);
  const run = async (path: string, body?: unknown) => {
    setError(null);
    try {
      await post(path, body);
      reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <ErrorBox error={error} />
      <table class="deployments">
        <thead><tr><th>Deployment</th><th>What</th><th>State</th><th>Started</th><th>Took</th><th></th></tr></thead>
        <tbody>
          {list.map((d) => (
            <tr key={d.id} data-deployment={d.id} data-state={d.state}>
              <td><Link href={`${base}/deployments/${d.id}`}>{shortId(d.id)}</Link>{d.id === current ? <span class="tag">current</span> : null}</td>
              <td>{describeSource(d.source)}</td>
              <td><Badge state={d.state} />{d.error_code ? <code class="muted"> {d.error_code}</code> : null}</td>
              <td>{ago(d.created_at)}</td>
              <td>{d.finished_at ? duration(Date.parse(d.finished_at) - Date.parse(d.created_at)) : ""}</td>
              <td>
                {ship && !isTerminal(d.state) ? <button class="danger small" onClick={() => run(`/v1/deployments/${d.id}/cancel`)}>Cancel</button> : null}
                {ship && d.state === "live" && !d.source?.action && d.id !== current ? (
                  <button class="secondary small" data-action="rollback" onClick={() => run(`/v1/apps/${enc(app.name)}/deployments`, { rollback_to: d.id })}>
                    Roll back to this
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function EnvVars({ ctx, app, onChanged }: { ctx: Ctx; app: any; onChanged: (app: any) => void }) {
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [secret, setSecret] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const ship = canShip(ctx.project.role);
  const change = async (body: any) => {
    setError(null);
    try {
      onChanged(await patch(`/v1/apps/${enc(app.name)}`, body));
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const set = async (e: Event) => {
    e.preventDefault();
    const k = key.trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      setError(new ApiError(0, "invalid_key", "a key is letters, digits and _, not starting with a digit"));
      return;
    }
    if (await change({ [secret ? "secrets" : "env"]: { [k]: value } })) {
      setKey("");
      setValue("");
    }
  };
  const rows: [string, string, boolean][] = [
    ...Object.entries(app.env ?? {}).map(([k, v]) => [k, String(v ?? ""), false] as [string, string, boolean]),
    ...Object.entries(app.secrets ?? {}).map(([k, v]) => [k, String(v), true] as [string, string, boolean]),
  ].sort((a, b) => a[0].localeCompare(b[0]));
  return (
    <>
      <table class="env">
        <tbody>
          {rows.length === 0 ? <tr><td class="muted">No variables.</td></tr> : null}
          {rows.map(([k, v, isSecret]) => (
            <tr key={k} data-key={k}>
              <td><code>{k}</code></td>
              <td>{isSecret ? <span class="masked" title="secret: never shown again">••••••••</span> : <code>{v}</code>}</td>
              <td>{isSecret ? <span class="tag">secret</span> : null}</td>
              <td>{ship ? <button class="secondary small" data-action="unset" onClick={() => change({ [isSecret ? "secrets" : "env"]: { [k]: null } })}>Unset</button> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {ship ? (
        <form class="inline" onSubmit={set} aria-label="Set a variable">
          <input name="key" placeholder="KEY" value={key} onInput={(e) => setKey(e.currentTarget.value)} />
          <input name="value" type={secret ? "password" : "text"} autocomplete="off" placeholder="value" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          <label class="check"><input type="checkbox" name="secret" checked={secret} onChange={(e) => setSecret(e.currentTarget.checked)} /> secret</label>
          <button type="submit">Set</button>
        </form>
      ) : null}
      <ErrorBox error={error} />
      <p class="muted">Changes apply at the next deploy, start or restart.</p>
    </>
  );
}

export function AppPage({ ctx, name }: { ctx: Ctx; name: string }) {
  const [app, setApp] = useState<any>(null);
  const [list, setList] = useState<any[]>([]);
  const [runtime, setRuntime] = useState<LogLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const timer = useRef(0);
  const base = `/p/${enc(ctx.project.name)}/apps/${enc(name)}`;

  const load = () => {
    get(`/v1/apps/${enc(name)}`).then(setApp, setError);
    get<{ items: any[] }>(`/v1/apps/${enc(name)}/deployments?limit=30`).then((p) => setList(p.items), setError);
  };
  useEffect(() => {
    load();
    // The last runtime lines first; the stream then follows from now.
    get<{ lines: LogLine[] }>(`/v1/apps/${enc(name)}/logs?since=10m`).then((p) => setRuntime((l) => appendLines(p.lines, l)), () => {});
    return events.subscribe([], [name], (e) => {
      if (e.kind === "open") {
        if (e.fresh) load();
      } else if (e.kind === "log" && e.data.app === name && !e.data.deployment) {
        setRuntime((l) => appendLines(l, [e.data]));
      } else if ((e.kind === "deployment" || e.kind === "app") && e.data.app === name) {
        clearTimeout(timer.current);
        timer.current = window.setTimeout(load, 100);
      }
    });
  }, [name]);

  const queued = (id: string) => navigate(`${base}/deployments/${id}`);

  if (!app) return <section><ErrorBox error={error} /><p class="loading">Loading…</p></section>;
  const ship = canShip(ctx.project.role);
  return (
    <section>
      <p class="crumbs"><Link href={`/p/${enc(ctx.project.name)}/apps`}>Apps</Link> / {app.name}</p>
      <h1>{app.name} <Badge state={app.status?.state} /></h1>
      <ErrorBox error={error} />
      <div class="facts">
        <AppUrl status={app.status} />
        <Health health={app.status?.health} />
        {app.git_url ? <span><code>{app.git_url}</code> @ <code>{app.git_ref ?? "HEAD"}</code></span> : null}
        {app.status?.release ? <span>release {shortId(app.status.release.id)} {ago(app.status.release.live_at)}</span> : null}
      </div>
      {ship ? (
        <div class="actions">
          <Deploy app={app} onQueued={queued} />
          <Operations app={app} onQueued={queued} />
        </div>
      ) : null}
      <h2>Deployments</h2>
      <Deployments ctx={ctx} app={app} list={list} reload={load} />
      <div class="two">
        <div>
          <h2>Domains</h2>
          <Domains ctx={ctx} app={app} onChanged={setApp} />
        </div>
        <div>
          <h2>Scale</h2>
          <Scale ctx={ctx} app={app} onQueued={queued} key={app.runtime?.replicas ?? 1} />
        </div>
        <div class="grow">
          <h2>Add-ons</h2>
          <Addons ctx={ctx} app={app.name} />
        </div>
      </div>
      <div class="two">
        <div>
          <h2>Env and secrets</h2>
          <EnvVars ctx={ctx} app={app} onChanged={setApp} />
        </div>
        <div class="grow">
          <h2>Runtime logs</h2>
          <LogView lines={runtime} name={`${app.name}-runtime`} empty="Nothing printed yet." />
        </div>
      </div>
    </section>
  );
}
