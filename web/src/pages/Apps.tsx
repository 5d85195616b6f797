// The project's apps with live status: state, release, URL, health. The
// first MAX_SUBSCRIPTIONS apps follow the tab's event stream; an app named
// by an event is read again (debounced); past that many apps the list is
// read again every 15 s instead.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, canShip, enc, get, post } from "../api";
import { events, MAX_SUBSCRIPTIONS } from "../events";
import { navigate } from "../router";
import type { Ctx } from "../main";
import { ago, Badge, ErrorBox, Link, shortId } from "../ui";

export async function allApps(): Promise<any[]> {
  const items: any[] = [];
  let after: string | null = null;
  for (let i = 0; i < 50; i++) {
    const page: { items: any[]; next: string | null } = await get(`/v1/apps?limit=200${after ? `&after=${enc(after)}` : ""}`);
    items.push(...page.items);
    if (!page.next) break;
    after = page.next;
  }
  return items;
}

export function Health({ health }: { health: any }) {
  if (!health) return <span class="muted">no check yet</span>;
  const label = health.ok === true ? "healthy" : health.ok === false ? "unhealthy" : "unknown";
  return (
    <span class={`health h-${label}`} title={health.detail ?? ""}>
      {label} <span class="muted">{ago(health.checked_at)}</span>
    </span>
  );
}

export function AppUrl({ status }: { status: any }) {
  const url = status?.https_url ?? status?.url;
  return url ? <a href={url} target="_blank" rel="noreferrer noopener">{url}</a> : <span class="muted">—</span>;
}

function CreateApp({ onCreated }: { onCreated: (name: string) => void }) {
  const [name, setName] = useState("");
  const [gitUrl, setGitUrl] = useState("");
  const [gitRef, setGitRef] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body: any = { name: name.trim() };
      if (gitUrl.trim()) body.git_url = gitUrl.trim();
      if (gitRef.trim()) body.git_ref = gitRef.trim();
      await post("/v1/apps", body);
      onCreated(body.name);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="inline card" onSubmit={submit} aria-label="Create an app">
      <h2>New app</h2>
      <input name="name" placeholder="name (a-z, 0-9, -)" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <input name="git_url" placeholder="git URL" value={gitUrl} onInput={(e) => setGitUrl(e.currentTarget.value)} />
      <input name="git_ref" placeholder="branch, tag or commit (HEAD)" value={gitRef} onInput={(e) => setGitRef(e.currentTarget.value)} />
      <button type="submit">Create app</button>
      <ErrorBox error={error} />
    </form>
  );
}

export function AppsPage({ ctx }: { ctx: Ctx }) {
  const [apps, setApps] = useState<any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const stale = useRef(new Set<string>());
  const timer = useRef(0);
  const base = `/p/${enc(ctx.project.name)}`;

  const load = () => allApps().then(setApps, setError);
  useEffect(() => {
    performance.mark("apps-load-start");
    load();
  }, []);
  useEffect(() => {
    if (apps) performance.mark("apps-painted");
  }, [apps !== null]);

  const names = (apps ?? []).slice(0, MAX_SUBSCRIPTIONS).map((a) => a.name);
  const key = names.join(",");
  useEffect(() => {
    if (!names.length) return;
    const refresh = () => {
      const wanted = [...stale.current];
      stale.current.clear();
      Promise.all(wanted.map((n) => get(`/v1/apps/${enc(n)}`).catch((e: ApiError) => (e.status === 404 ? { name: n, gone: true } : null)))).then((fresh) =>
        setApps((list) => {
          if (!list) return list;
          let next = [...list];
          for (const f of fresh) {
            if (!f) continue;
            next = f.gone ? next.filter((a) => a.name !== f.name) : next.map((a) => (a.name === f.name ? f : a));
          }
          return next;
        }),
      );
    };
    const off = events.subscribe([], names, (e) => {
      if (e.kind === "open") {
        if (e.fresh) load();
        return;
      }
      const app = e.data?.app;
      if (typeof app === "string" && names.includes(app) && e.kind !== "log") {
        stale.current.add(app);
        clearTimeout(timer.current);
        timer.current = window.setTimeout(refresh, 150);
      }
    });
    const poll = (apps?.length ?? 0) > MAX_SUBSCRIPTIONS ? window.setInterval(load, 15_000) : 0;
    return () => {
      off();
      clearInterval(poll);
    };
  }, [key]);

  return (
    <section>
      <h1>Apps</h1>
      <ErrorBox error={error} />
      {canShip(ctx.project.role) ? <CreateApp onCreated={(n) => navigate(`${base}/apps/${enc(n)}`)} /> : null}
      {apps === null ? (
        <p class="loading">Loading…</p>
      ) : apps.length === 0 ? (
        <p>No apps yet.</p>
      ) : (
        <table class="apps" data-count={apps.length}>
          <thead>
            <tr><th>App</th><th>State</th><th>Release</th><th>URL</th><th>Health</th></tr>
          </thead>
          <tbody>
            {apps.map((a) => (
              <tr key={a.name} data-app={a.name}>
                <td><Link href={`${base}/apps/${enc(a.name)}`}>{a.name}</Link></td>
                <td><Badge state={a.status?.state} /></td>
                <td>{a.status?.release ? <span title={a.status.release.image_ref}>{shortId(a.status.release.id)} <span class="muted">{ago(a.status.release.live_at)}</span></span> : <span class="muted">—</span>}</td>
                <td><AppUrl status={a.status} /></td>
                <td><Health health={a.status?.health} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
