// An app's add-ons: a PostgreSQL database (linked as DATABASE_URL) or a
// named volume mounted at a path. The API records a new one as `pending`;
// the app's next deployment creates it. Removing one either detaches it
// (the row goes, the data stays on its server) or, with purge, marks it
// `purging` so the next deployment drops its data. The database password
// never comes back from the API. Viewers see the list only.
import { useEffect, useState } from "preact/hooks";
import { canShip, del, enc, get, post } from "../api";
import type { Ctx } from "../main";
import { ago, Badge, ErrorBox } from "../ui";

function Detail({ addon }: { addon: any }) {
  if (addon.postgres) {
    return <span>database <code>{addon.postgres.database}</code> as <code>{addon.postgres.env}</code></span>;
  }
  if (addon.volume) {
    return <span>volume <code>{addon.volume.name}</code> at <code>{addon.volume.mount}</code></span>;
  }
  return null;
}

function Create({ app, onCreated }: { app: string; onCreated: () => void }) {
  const [kind, setKind] = useState("postgres");
  const [name, setName] = useState("");
  const [mount, setMount] = useState("");
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const body: any = { kind, name: name.trim() };
      if (kind === "volume") body.mount = mount.trim();
      await post(`/v1/apps/${enc(app)}/addons`, body);
      setName("");
      setMount("");
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <form class="inline" onSubmit={submit} aria-label="Add an add-on">
        <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
          <option value="postgres">postgres</option>
          <option value="volume">volume</option>
        </select>
        <input name="name" placeholder="name (a-z, 0-9, -)" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        {kind === "volume" ? (
          <input name="mount" placeholder="mount path, e.g. /data" required value={mount} onInput={(e) => setMount(e.currentTarget.value)} />
        ) : null}
        <button type="submit">Add</button>
      </form>
      <ErrorBox error={error} />
    </>
  );
}

export function Addons({ ctx, app }: { ctx: Ctx; app: string }) {
  const [items, setItems] = useState<any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  // Purging drops data: it takes a second click on the same row.
  const [confirming, setConfirming] = useState<string | null>(null);
  const ship = canShip(ctx.project.role);
  const load = () => get<{ items: any[] }>(`/v1/apps/${enc(app)}/addons`).then((r) => setItems(r.items), setError);
  useEffect(() => void load(), [app]);
  const remove = async (name: string, purge: boolean) => {
    setError(null);
    setConfirming(null);
    try {
      await del(`/v1/apps/${enc(app)}/addons/${enc(name)}${purge ? "?purge=true" : ""}`);
      load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="addons">
      <ErrorBox error={error} />
      {items === null ? null : items.length === 0 ? <p class="muted">No add-ons.</p> : (
        <table class="addons">
          <thead><tr><th>Name</th><th>Kind</th><th>What</th><th>State</th><th>Added</th><th></th></tr></thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.id} data-addon={a.name} data-state={a.state}>
                <td>{a.name}</td>
                <td>{a.kind}</td>
                <td><Detail addon={a} /></td>
                <td><Badge state={a.state} /></td>
                <td>{ago(a.created_at)}</td>
                <td>
                  {ship && a.state !== "purging" && confirming === a.name ? (
                    <>
                      <button class="danger small" data-action="confirm-purge" onClick={() => remove(a.name, true)}>Drop its data</button>{" "}
                      <button class="link" onClick={() => setConfirming(null)}>Keep</button>
                    </>
                  ) : ship && a.state !== "purging" ? (
                    <>
                      <button class="secondary small" data-action="detach-addon" title="unlink it; its data stays" onClick={() => remove(a.name, false)}>Detach</button>{" "}
                      <button class="danger small" data-action="purge-addon" title="the next deployment drops its data" onClick={() => setConfirming(a.name)}>Purge…</button>
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {ship ? <Create app={app} onCreated={load} /> : null}
      <p class="muted">New add-ons are created, and purged ones dropped, by the app's next deployment.</p>
    </div>
  );
}
