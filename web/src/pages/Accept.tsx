// The page an invitation link opens (`/invite/<secret>`): a new person
// chooses a password, someone with an account gives theirs; either way
// `POST /v1/invitations/{secret}/accept` makes them a member and signs
// them in. The secret is only in this page's URL (the API sends
// `Referrer-Policy: no-referrer`), and the page replaces that history
// entry once the invitation is used.
import { useState } from "preact/hooks";
import { enc, post, setCsrf } from "../api";
import { ErrorBox } from "../ui";

export function Accept({ token, onAccepted }: { token: string; onAccepted: () => void }) {
  const [password, setPassword] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const signed = await post<{ csrf_token: string }>(`/v1/invitations/${enc(token)}/accept`, { password });
      setCsrf(signed.csrf_token);
      onAccepted();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card signin" onSubmit={submit} aria-label="Accept the invitation">
      <h1>Join a Slipway project</h1>
      <p class="muted">New here? Choose a password for your account. Have one? Give its password.</p>
      <label>
        Password
        <input name="password" type="password" autocomplete="new-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>Accept the invitation</button>
    </form>
  );
}
