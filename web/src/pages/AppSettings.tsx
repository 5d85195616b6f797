// An app's custom domains and its scale, on the app page. Domains are the
// app's `domains` list, replaced whole by `PATCH /v1/apps/{app}` (the API
// validates each host and answers `domain_taken` for another app's); they
// join the route at the next deploy, start or restart. Scale is
// `runtime.replicas`, changed by `POST /v1/apps/{app}/scale`, which queues
// a restart of the current release (so it needs one). Viewers see both,
// with no forms or buttons.
import { useState } from "preact/hooks";
import { ApiError, canShip, enc, patch, post } from "../api";
import type { Ctx } from "../main";
import { ErrorBox } from "../ui";

/** Most replicas the API accepts (`POST /v1/apps/{app}/scale`). */
export const MAX_REPLICAS = 16;

export function Domains({ ctx, app, onChanged }: { ctx: Ctx; app: any; onChanged: (app: any) => void }) {
  const [host, setHost] = useState("");
  const [error, setError] = useState<unknown>(null);
  const domains: string[] = app.domains ?? [];
  const ship = canShip(ctx.project.role);
  const replace = async (next: string[]) => {
    setError(null);
    try {
      onChanged(await patch(`/v1/apps/${enc(app.name)}`, { domains: next }));
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const add = async (e: Event) => {
    e.preventDefault();
    const h = host.trim().toLowerCase();
    if (!h) return;
    if (domains.includes(h)) {
      setError(new ApiError(0, "already_added", `${h} is a domain of this app already`));
      return;
    }
    if (await replace([...domains, h])) setHost("");
  };
  return (
    <div class="domains">
      {domains.length === 0 ? <p class="muted">No custom domains.</p> : (
        <ul class="plain">
          {domains.map((d) => (
            <li key={d} data-domain={d}>
              <code>{d}</code>{" "}
              {ship ? <button class="secondary small" data-action="remove-domain" onClick={() => replace(domains.filter((x) => x !== d))}>Remove</button> : null}
            </li>
          ))}
        </ul>
      )}
      {ship ? (
        <form class="inline" onSubmit={add} aria-label="Add a domain">
          <input name="domain" placeholder="www.example.com" value={host} onInput={(e) => setHost(e.currentTarget.value)} />
          <button type="submit">Add domain</button>
        </form>
      ) : null}
      <ErrorBox error={error} />
      <p class="muted">Point each domain's DNS at this platform; the route changes at the next deploy, start or restart.</p>
    </div>
  );
}

export function Scale({ ctx, app, onQueued }: { ctx: Ctx; app: any; onQueued: (id: string) => void }) {
  const current = Number(app.runtime?.replicas ?? 1);
  const [wanted, setWanted] = useState(String(current));
  const [error, setError] = useState<unknown>(null);
  const released = !!app.status?.release;
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    const n = Number(wanted);
    if (!Number.isInteger(n) || n < 1 || n > MAX_REPLICAS) {
      setError(new ApiError(0, "validation_failed", `replicas must be a whole number from 1 to ${MAX_REPLICAS}`));
      return;
    }
    try {
      const queued = await post<{ id: string }>(`/v1/apps/${enc(app.name)}/scale`, { replicas: n });
      onQueued(queued.id);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="scale">
      <p>
        <strong data-replicas={current}>{current}</strong> {current === 1 ? "replica" : "replicas"} of each release
      </p>
      {canShip(ctx.project.role) ? (
        released ? (
          <form class="inline" onSubmit={submit} aria-label="Scale">
            <input name="replicas" type="number" min={1} max={MAX_REPLICAS} value={wanted} onInput={(e) => setWanted(e.currentTarget.value)} />
            <button type="submit" disabled={Number(wanted) === current}>Scale</button>
          </form>
        ) : (
          <p class="muted">Deploy a release first: scaling restarts the current one.</p>
        )
      ) : null}
      <ErrorBox error={error} />
    </div>
  );
}
