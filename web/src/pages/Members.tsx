// A project's members and open invitations, for owners (the API answers
// these routes to owners only, so others are told so rather than shown an
// empty list): change a role, remove a member, invite by email with a role
// and see the one-use link the API answers (shown this once: the list
// never carries it; without a public URL set, the API answers a path, made
// whole here from the page's origin), revoke an open invitation. The API's refusals
// (`already_member`, `already_invited`, `last_owner`) are shown as it
// words them, with their code.
import { useEffect, useState } from "preact/hooks";
import { del, get, isOwner, patch, post, Role } from "../api";
import type { Ctx } from "../main";
import { ago, ErrorBox } from "../ui";

const ROLES: Role[] = ["owner", "member", "viewer"];

function RoleSelect({ value, name, onChange }: { value: string; name: string; onChange: (role: string) => void }) {
  return (
    <select name={name} value={value} onChange={(e) => onChange(e.currentTarget.value)}>
      {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
    </select>
  );
}

interface Invited {
  email: string;
  role: string;
  url: string;
  expires_at: string;
  mailed: boolean;
}

function Invite({ base, onInvited }: { base: string; onInvited: () => void }) {
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [made, setMade] = useState<Invited | null>(null);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setMade(null);
    try {
      setMade(await post<Invited>(`${base}/invitations`, { email: email.trim(), role }));
      setEmail("");
      onInvited();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <form class="inline" onSubmit={submit} aria-label="Invite">
        <input name="email" type="email" placeholder="email" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <RoleSelect name="role" value={role} onChange={setRole} />
        <button type="submit">Invite</button>
      </form>
      <ErrorBox error={error} />
      {made ? (
        <div class="notice invite-link">
          <p>
            Send this link to <strong>{made.email}</strong> ({made.role}). It works once, until{" "}
            {new Date(made.expires_at).toLocaleString()}, and is shown only now{made.mailed ? "; it was also mailed" : ""}.
          </p>
          <input class="link-text" name="invite_url" readOnly value={new URL(made.url, location.origin).href} onFocus={(e) => e.currentTarget.select()} />{" "}
          <button class="link" onClick={() => setMade(null)}>Hide</button>
        </div>
      ) : null}
    </>
  );
}

export function Members({ ctx }: { ctx: Ctx }) {
  const base = `/v1/projects/${ctx.project.id}`;
  const [members, setMembers] = useState<any[] | null>(null);
  const [invitations, setInvitations] = useState<any[]>([]);
  const [error, setError] = useState<unknown>(null);
  // Bumped after a refused change so the role selects show the stored role again.
  const [generation, setGeneration] = useState(0);
  const owner = isOwner(ctx.project.role);

  const load = () => {
    get<{ items: any[] }>(`${base}/members`).then((r) => setMembers(r.items), setError);
    get<{ items: any[] }>(`${base}/invitations`).then((r) => setInvitations(r.items), setError);
  };
  useEffect(() => {
    if (owner) load();
  }, [base, owner]);

  const run = async (call: () => Promise<unknown>, self = false) => {
    setError(null);
    try {
      await call();
      // The caller changed their own standing: their role and pages follow.
      if (self) location.reload();
      else load();
    } catch (err) {
      setError(err);
      setGeneration((g) => g + 1);
    }
  };

  if (!owner) {
    return (
      <section>
        <h1>Members</h1>
        <p class="muted">Only the project's owners see and manage its members.</p>
      </section>
    );
  }
  return (
    <section>
      <h1>Members</h1>
      <ErrorBox error={error} />
      {members === null ? (
        <p class="loading">Loading…</p>
      ) : (
        <table class="members">
          <thead><tr><th>Email</th><th>Role</th><th>Since</th><th></th></tr></thead>
          <tbody>
            {members.map((m) => {
              const self = m.user_id === ctx.me.user.id;
              return (
                <tr key={`${m.user_id}-${generation}`} data-member={m.email} data-role={m.role}>
                  <td>{m.email}{self ? <span class="tag">you</span> : null}{m.disabled_at ? <span class="tag">disabled</span> : null}</td>
                  <td>
                    <RoleSelect name="member_role" value={m.role} onChange={(role) => run(() => patch(`${base}/members/${m.user_id}`, { role }), self)} />
                  </td>
                  <td>{ago(m.since)}</td>
                  <td><button class="danger small" data-action="remove-member" onClick={() => run(() => del(`${base}/members/${m.user_id}`), self)}>Remove</button></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <h2>Invite someone</h2>
      <Invite base={base} onInvited={load} />
      <h2>Open invitations</h2>
      {invitations.length === 0 ? <p class="muted">None.</p> : (
        <table class="invitations">
          <thead><tr><th>Email</th><th>Role</th><th>Invited by</th><th>Sent</th><th>Expires</th><th></th></tr></thead>
          <tbody>
            {invitations.map((i) => (
              <tr key={i.id} data-invitation={i.email}>
                <td>{i.email}</td><td>{i.role}</td><td>{i.invited_by}</td><td>{ago(i.created_at)}</td>
                <td>{new Date(i.expires_at).toLocaleDateString()}</td>
                <td><button class="danger small" data-action="revoke-invitation" onClick={() => run(() => del(`${base}/invitations/${i.id}`))}>Revoke</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
