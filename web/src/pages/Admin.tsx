// Owners' and operators' pages: project tokens (made, shown once, revoked),
// the audit log, dead jobs with re-drive, and targets with their checks and
// the cloud servers they were bought as (owners destroy them).
import { useEffect, useState } from "preact/hooks";
import { canShip, del, enc, get, isOwner, post } from "../api";
import type { Ctx } from "../main";
import { ago, Badge, ErrorBox, shortId } from "../ui";

function useList(path: string): [any[] | null, unknown, () => void] {
  const [items, setItems] = useState<any[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () => get<{ items: any[] }>(path).then((r) => setItems(r.items), setError);
  useEffect(() => void load(), [path]);
  return [items, error, load];
}

export function Tokens({ ctx }: { ctx: Ctx }) {
  const path = `/v1/projects/${ctx.project.id}/tokens`;
  const [items, error, load] = useList(path);
  const [name, setName] = useState("");
  const [role, setRole] = useState("viewer");
  const [made, setMade] = useState<string | null>(null);
  const [failure, setFailure] = useState<unknown>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setFailure(null);
    try {
      const token = await post<{ token: string }>(path, { name, role });
      setMade(token.token);
      setName("");
      load();
    } catch (err) {
      setFailure(err);
    }
  };
  const revoke = async (id: string) => {
    setFailure(null);
    try {
      await del(`${path}/${id}`);
      load();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section>
      <h1>Tokens</h1>
      <ErrorBox error={error || failure} />
      <form class="inline" onSubmit={create}>
        <input name="name" placeholder="name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <select name="role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          <option>viewer</option><option>member</option><option>owner</option>
        </select>
        <button type="submit">Create token</button>
      </form>
      {made ? <p class="notice">The new token, shown this once: <code class="secret">{made}</code> <button class="link" onClick={() => setMade(null)}>Hide</button></p> : null}
      <table>
        <thead><tr><th>Name</th><th>Role</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead>
        <tbody>
          {(items ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td><td>{t.role}</td><td>{ago(t.created_at)}</td><td>{ago(t.last_used_at) || "never"}</td>
              <td>{t.expires_at ? new Date(t.expires_at).toLocaleDateString() : "never"}</td>
              <td>{t.revoked_at ? <span class="muted">revoked</span> : <button class="danger small" onClick={() => revoke(t.id)}>Revoke</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Audit({ ctx }: { ctx: Ctx }) {
  const [items, error] = useList(`/v1/audit?project_id=${ctx.project.id}&limit=100`);
  return (
    <section>
      <h1>Audit log</h1>
      <ErrorBox error={error} />
      <table>
        <thead><tr><th>When</th><th>Who</th><th>What</th><th>Resource</th><th>Status</th></tr></thead>
        <tbody>
          {(items ?? []).map((a) => (
            <tr key={a.id} class={a.status >= 400 ? "refused" : ""}>
              <td title={a.at}>{ago(a.at)}</td><td>{a.actor}</td><td>{a.action}</td><td><code>{a.method} {a.resource}</code></td><td>{a.status}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function DeadJobs({ ctx }: { ctx: Ctx }) {
  const [items, error, load] = useList("/v1/dead-jobs");
  const [failure, setFailure] = useState<unknown>(null);
  const redrive = async (id: string) => {
    setFailure(null);
    try {
      await post(`/v1/dead-jobs/${enc(id)}/redrive`);
      load();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section>
      <h1>Dead jobs</h1>
      <ErrorBox error={error || failure} />
      {items && items.length === 0 ? <p>No dead jobs.</p> : null}
      <table>
        <thead><tr><th>Died</th><th>Stage</th><th>Deployment</th><th>Reason</th><th></th></tr></thead>
        <tbody>
          {(items ?? []).map((j) => (
            <tr key={j.id}>
              <td>{ago(j.dead_at)}</td><td>{j.stage}</td><td>{j.deployment_id ? shortId(j.deployment_id) : ""}</td><td>{j.reason}</td>
              <td>{j.redriven_at ? <span class="muted">re-driven {ago(j.redriven_at)}</span> : canShip(ctx.project.role) ? <button class="small" onClick={() => redrive(j.id)}>Re-drive</button> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Targets({ ctx }: { ctx: Ctx }) {
  const [items, error, load] = useList("/v1/targets");
  const [failure, setFailure] = useState<unknown>(null);
  const [checked, setChecked] = useState<Record<string, string>>({});
  const check = async (name: string) => {
    setFailure(null);
    try {
      const r = await post<{ id: string; state: string }>(`/v1/targets/${enc(name)}/check`);
      setChecked((c) => ({ ...c, [name]: `check ${shortId(r.id)} ${r.state}` }));
      load();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section>
      <h1>Targets</h1>
      <ErrorBox error={error || failure} />
      <table>
        <thead><tr><th>Name</th><th>Kind</th><th>Host</th><th>Engine</th><th>Created</th><th></th></tr></thead>
        <tbody>
          {(items ?? []).map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td><td><Badge state={t.kind} /></td><td>{t.host ? `${t.user ?? ""}@${t.host}:${t.port ?? 22}` : "this host"}</td>
              <td>{t.engine ?? ""}</td><td>{ago(t.created_at)}</td>
              <td>{canShip(ctx.project.role) && t.kind === "ssh" ? <button class="small" onClick={() => check(t.name)}>Check</button> : null} {checked[t.name] ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Servers ctx={ctx} />
    </section>
  );
}

// Servers bought from the project's cloud accounts: state, where, cost, the
// target each became. A destroy takes a second click, as it cannot be
// undone. Each row names its newest operation (create or destroy) and its
// state.
function Servers({ ctx }: { ctx: Ctx }) {
  const [items, error, load] = useList("/v1/servers");
  const [failure, setFailure] = useState<unknown>(null);
  const [armed, setArmed] = useState<string | null>(null);
  const destroy = async (name: string) => {
    setFailure(null);
    if (armed !== name) {
      setArmed(name);
      return;
    }
    setArmed(null);
    try {
      await del(`/v1/servers/${enc(name)}`);
      load();
    } catch (err) {
      setFailure(err);
    }
  };
  const live = (items ?? []).filter((s) => s.state !== "destroyed");
  return (
    <>
      <h2>Servers</h2>
      <ErrorBox error={error || failure} />
      {items && live.length === 0 ? <p class="muted">No cloud servers: buy one with the CLI (slipway servers create).</p> : null}
      <table>
        <thead><tr><th>Name</th><th>State</th><th>Where</th><th>IPv4</th><th>EUR / month</th><th>Target</th><th>Operation</th><th></th></tr></thead>
        <tbody>
          {live.map((s) => {
            const op = (s.operations ?? [])[(s.operations ?? []).length - 1];
            return (
              <tr key={s.id}>
                <td>{s.name}</td><td><Badge state={s.state} />{s.error ? <div class="muted">{s.error}</div> : null}</td>
                <td>{s.provider} {s.region} {s.size}</td><td>{s.ipv4 ?? ""}</td>
                <td>{Number(s.monthly_cost_eur ?? 0).toFixed(2)}</td><td>{s.target ?? ""}</td>
                <td>{op ? `${op.kind.replace("server_", "")} ${shortId(op.id)} ${op.state}` : null}</td>
                <td>{isOwner(ctx.project.role) && s.state !== "destroying" ? <button class="small danger" onClick={() => destroy(s.name)}>{armed === s.name ? "Destroy: sure?" : "Destroy"}</button> : null}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
